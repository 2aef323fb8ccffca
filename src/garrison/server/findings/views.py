"""Console pages: findings with filters and a chart over time, and one finding's detail."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from garrison.core.errors import GarrisonError
from garrison.server.accounts.roles import OPERATE, READ_ALL
from garrison.server.accounts.views import console_user, role_required
from garrison.server.findings import actions, queries

PAGE = 50
CHART_HEIGHT, CHART_BAR, CHART_GAP = 120, 28, 8


@dataclass(frozen=True)
class Segment:
    """One severity's part of a day's bar, in SVG user units."""

    label: str
    count: int
    y: int
    height: int


@dataclass(frozen=True)
class Column:
    """One day of the chart."""

    day: str
    x: int
    total: int
    segments: list[Segment]


def _columns(days: list[queries.Day]) -> list[Column]:
    tallest = max((d.total for d in days), default=0) or 1
    columns = []
    for i, day in enumerate(days):
        y = CHART_HEIGHT
        segments = []
        for label in queries.LABELS:
            count = day.counts[label]
            if not count:
                continue
            height = max(2, round(CHART_HEIGHT * count / tallest))
            y -= height
            segments.append(Segment(label, count, y, height))
        columns.append(
            Column(day.day.strftime("%m-%d"), i * (CHART_BAR + CHART_GAP), day.total, segments)
        )
    return columns


@role_required(READ_ALL)
@require_GET
def findings(request: HttpRequest) -> HttpResponse:
    """Findings, most recent activity first, with filters and the findings-over-time chart."""
    actor = console_user(request)
    form = {
        "severity": request.GET.get("severity", ""),
        "status": request.GET.get("status", "active"),
        "q": request.GET.get("q", "")[:200].replace("\x00", ""),
    }
    error = ""
    try:
        found = queries.filtered(
            actor, severity=form["severity"], status=form["status"], text=form["q"]
        )
    except GarrisonError as exc:
        error = str(exc)
        found = queries.findings_visible_to(actor).none()
    page = Paginator(found, PAGE).get_page(request.GET.get("page"))
    days = queries.per_day(actor)
    columns = _columns(days)
    context = {
        "form": form,
        "page": page,
        "error": error,
        "columns": columns,
        "chart_width": len(columns) * (CHART_BAR + CHART_GAP),
        "chart_height": CHART_HEIGHT + 24,
        "labels": queries.LABELS,
        "summary": ", ".join(f"{d.day:%m-%d} {d.total}" for d in days if d.total) or "none",
    }
    return render(request, "findings/list.html", context, status=400 if error else 200)


@role_required(OPERATE)
@require_POST
def set_status(request: HttpRequest, finding_id: str) -> HttpResponse:
    """Archive a finding or make it active again (from its page)."""
    actor = console_user(request)
    try:
        finding = actions.do_set_status(
            actor, queries.access_finding(actor, finding_id), request.POST.get("status", "")
        )
    except GarrisonError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"The finding is {finding.status}.")
    return redirect("findings:detail", finding_id=finding_id)


@role_required(READ_ALL)
@require_GET
def detail(request: HttpRequest, finding_id: str) -> HttpResponse:
    """One finding: what, who, when, what to do, and its evidence in the log store."""
    finding = queries.access_finding(console_user(request), finding_id)
    evidence = [
        {"ref": ref, "stream": ref.rsplit(":", 1)[0], "offset": ref.rsplit(":", 1)[-1]}
        for ref in finding.evidence
        if isinstance(ref, str) and ":" in ref
    ]
    context = {
        "finding": finding,
        "evidence": evidence,
        "can_operate": console_user(request).role in OPERATE,
    }
    return render(request, "findings/detail.html", context)
