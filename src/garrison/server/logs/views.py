"""Console page: search any stream of the log store."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from garrison.core.errors import GarrisonError
from garrison.server.accounts.roles import READ_ALL
from garrison.server.accounts.views import _actor, role_required
from garrison.server.logs import queries

PAGE = 50


def _before(request: HttpRequest) -> int | None:
    raw = request.GET.get("before", "")
    return int(raw) if raw.isdigit() else None


@role_required(READ_ALL)
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """Search form and newest-first results, paged by offset."""
    actor = _actor(request)
    streams = queries.streams_visible_to(actor)
    stream = request.GET.get("stream") or ("audit" if "audit" in streams else "")
    form = {k: request.GET.get(k, "") for k in ("q", "since", "until")}
    hits: list[queries.Hit] = []
    error = ""
    if stream:
        try:
            hits = queries.search_logs(
                actor,
                stream=stream,
                text=form["q"],
                since=form["since"],
                until=form["until"],
                limit=PAGE,
                before=_before(request),
            )
        except GarrisonError as exc:
            error = str(exc)
    context = {
        "streams": streams,
        "stream": stream,
        "form": form,
        "hits": hits,
        "error": error,
        "next_before": hits[-1].offset if len(hits) == PAGE else None,
    }
    return render(request, "logs/search.html", context, status=400 if error else 200)
