"""Console pages: the audit trail and one event with its integrity status."""

from __future__ import annotations

import msgspec
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from garrison.core.errors import GarrisonError, NotFoundError
from garrison.server.accounts.roles import READ_ALL
from garrison.server.accounts.views import console_user, role_required
from garrison.server.audit import queries
from garrison.server.logs.views import PAGE, _before


@role_required(READ_ALL)
@require_GET
def events(request: HttpRequest) -> HttpResponse:
    """Audit events newest first, filtered by actor, action, outcome and time."""
    form = {k: request.GET.get(k, "") for k in ("actor", "action", "outcome", "since", "until")}
    error = ""
    hits: list[queries.Hit] = []
    try:
        hits = queries.search_audit(
            console_user(request),
            who=form["actor"],
            action=form["action"],
            outcome=form["outcome"],
            since=form["since"],
            until=form["until"],
            limit=PAGE,
            before=_before(request),
        )
    except GarrisonError as exc:
        error = str(exc)
    context = {
        "form": form,
        "hits": hits,
        "error": error,
        "outcomes": queries.OUTCOMES,
        "next_before": hits[-1].offset if len(hits) == PAGE else None,
    }
    return render(request, "audit/events.html", context, status=400 if error else 200)


@role_required(READ_ALL)
@require_GET
def event(request: HttpRequest, event_id: str) -> HttpResponse:
    """One event, its full record and whether it is covered by a valid signed digest."""
    try:
        hit, integrity = queries.event_with_integrity(console_user(request), event_id)
    except NotFoundError:
        return render(request, "audit/missing.html", {"event_id": event_id}, status=404)
    pretty = msgspec.json.format(msgspec.json.encode(hit.event), indent=2).decode()
    context = {"hit": hit, "integrity": integrity, "pretty": pretty}
    return render(request, "audit/event.html", context)
