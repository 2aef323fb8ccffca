"""Console page: search any stream of the log store."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from garrison.core.errors import GarrisonError
from garrison.server.accounts.roles import READ_ALL
from garrison.server.accounts.views import console_user, role_required
from garrison.server.logs import queries

PAGE = 50


@dataclass(frozen=True)
class Bar:
    """One row of the events-per-stream chart, in SVG user units."""

    name: str
    records: int
    y: int
    width: int


CHART_ROW, CHART_LABEL, CHART_BAR = 28, 110, 360


def _bars(sizes: dict[str, int]) -> list[Bar]:
    widest = max(sizes.values(), default=0) or 1
    return [
        Bar(name, count, i * CHART_ROW, max(2, round(CHART_BAR * count / widest)))
        for i, (name, count) in enumerate(sizes.items())
    ]


def _before(request: HttpRequest) -> int | None:
    raw = request.GET.get("before", "")
    return int(raw) if re.fullmatch(r"[0-9]{1,18}", raw) else None


@role_required(READ_ALL)
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """Search form and newest-first results, paged by offset."""
    actor = console_user(request)
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
        "bars": _bars(queries.stream_sizes(actor)),
        "chart_height": CHART_ROW * len(streams),
        "streams": streams,
        "stream": stream,
        "form": form,
        "hits": hits,
        "error": error,
        "next_before": hits[-1].offset if len(hits) == PAGE else None,
    }
    return render(request, "logs/search.html", context, status=400 if error else 200)
