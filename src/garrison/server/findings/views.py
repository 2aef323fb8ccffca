"""Console pages: findings with filters and a chart over time, and one finding's detail."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

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


class SuppressionForm(forms.Form):
    """Suppress new findings of a type, optionally only from one source or on one host."""

    type = forms.CharField(
        max_length=200, help_text="The finding type, e.g. UnauthorizedAccess:EC2/SSHBruteForce"
    )
    src = forms.CharField(
        max_length=255, required=False, label="Source", help_text="Empty for every source"
    )
    host = forms.CharField(max_length=255, required=False, help_text="Empty for every host")
    reason = forms.CharField(max_length=500, help_text="Why, e.g. our pentest, ticket 42")
    days = forms.IntegerField(
        min_value=1, max_value=actions.MAX_SUPPRESSION_DAYS, initial=7, help_text="Then it ends"
    )


@role_required(READ_ALL)
@require_http_methods(["GET", "POST"])
def suppressions(request: HttpRequest) -> HttpResponse:
    """Suppressions (live and expired); operators add one (prefilled from a finding's page)."""
    actor = console_user(request)
    if request.method == "POST":
        if actor.role not in OPERATE:
            return render(request, "console/denied.html", status=403)
        form = SuppressionForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                made = actions.do_add_suppression(
                    actor,
                    finding_type=data["type"],
                    src=data["src"],
                    host=data["host"],
                    reason=data["reason"],
                    days=data["days"],
                )
            except GarrisonError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request,
                    f"New {made.type} findings are suppressed until {made.expires_at:%Y-%m-%d}.",
                )
                return redirect("findings:suppressions")
    else:
        prefill = {k: request.GET[k][:255] for k in ("type", "src", "host") if k in request.GET}
        form = SuppressionForm(initial={"days": 7, **prefill})
    context = {
        "suppressions": queries.suppressions_visible_to(actor)[:200],
        "now": timezone.now(),
        "form": form,
        "can_operate": actor.role in OPERATE,
    }
    status = 400 if form.errors else 200
    return render(request, "findings/suppressions.html", context, status=status)


@role_required(OPERATE)
@require_POST
def remove_suppression(request: HttpRequest, suppression_id: str) -> HttpResponse:
    """End a suppression now."""
    try:
        actions.do_remove_suppression(console_user(request), suppression_id)
    except GarrisonError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The suppression has ended.")
    return redirect("findings:suppressions")
