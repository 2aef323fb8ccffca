"""Console shell pages: home, section placeholders, errors, static assets, health."""

from __future__ import annotations

import mimetypes
from functools import cache
from pathlib import Path

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from garrison import __version__

STATIC_ROOT = Path(__file__).resolve().parent / "static"

#: What each section will hold, shown until its feature is built.
SECTION_TEXT = {
    "access": ("Access", "Access requests, grants and periodic reviews."),
    "trust": ("Trust", "Each security claim with the live evidence that it holds."),
}


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The overview page."""
    return render(request, "console/home.html")


@require_GET
def section(request: HttpRequest, name: str) -> HttpResponse:
    """A console section that later work fills in."""
    title, text = SECTION_TEXT[name]
    return render(request, "console/section.html", {"title": title, "text": text})


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused cross-site or stale form submission."""
    return render(request, "console/csrf.html", status=403)


@cache
def _asset(name: str) -> tuple[bytes, str]:
    path = (STATIC_ROOT / name).resolve()
    if STATIC_ROOT not in path.parents or not path.is_file():
        raise Http404(name)
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return path.read_bytes(), kind


@login_not_required
@require_GET
def static(request: HttpRequest, name: str) -> HttpResponse:
    """Serve a vendored asset from memory (no CDN, works offline and under ASGI)."""
    body, kind = _asset(name)
    response = HttpResponse(body, content_type=kind)
    response["Cache-Control"] = "public, max-age=3600"
    return response


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for supervisors and load balancers (no data, no auth)."""
    return JsonResponse({"status": "ok", "version": __version__})
