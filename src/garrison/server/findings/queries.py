"""Permission-checked reads of findings, and the findings-over-time chart."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from garrison.core.errors import NotFoundError, PermissionDeniedError, UsageError
from garrison.server.accounts.models import User
from garrison.server.accounts.roles import READ_ALL
from garrison.server.findings.models import STATUSES, Finding, Suppression

LABELS = ("low", "medium", "high", "critical")
_FLOORS = {"low": 0.0, "medium": 4.0, "high": 7.0, "critical": 9.0}
CHART_DAYS = 14


def findings_visible_to(actor: User) -> QuerySet[Finding]:
    """Every finding, for those who read fleet-wide data."""
    if actor.role not in READ_ALL:
        raise PermissionDeniedError("your role may not read findings")
    return Finding.objects.all()


def suppressions_visible_to(actor: User) -> QuerySet[Suppression]:
    """Every suppression, newest first, for those who read findings."""
    findings_visible_to(actor)
    return Suppression.objects.order_by("-created_at")


def filtered(
    actor: User, *, severity: str = "", status: str = "active", text: str = ""
) -> QuerySet[Finding]:
    """Findings at or above a severity label, in a status, whose type, title or actor holds text."""
    found = findings_visible_to(actor)
    if severity:
        if severity not in _FLOORS:
            raise UsageError(f"unknown severity {severity!r}; use one of {', '.join(LABELS)}")
        found = found.filter(severity__gte=_FLOORS[severity])
    if status:
        if status not in STATUSES:
            raise UsageError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        found = found.filter(status=status)
    if text:
        from django.db.models import Q  # noqa: PLC0415

        found = found.filter(
            Q(type__icontains=text)
            | Q(title__icontains=text)
            | Q(src__icontains=text)
            | Q(user__icontains=text)
            | Q(host__icontains=text)
        )
    return found


def access_finding(actor: User, finding_id: str) -> Finding:
    """One finding by its id."""
    found = (
        findings_visible_to(actor).filter(finding_id=finding_id).first()
        if "\x00" not in finding_id
        else None
    )
    if found is None:
        raise NotFoundError(f"no finding {finding_id!r}")
    return found


@dataclass(frozen=True)
class Day:
    """Findings first seen on one day, by severity label."""

    day: dt.date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        """All of that day's findings."""
        return sum(self.counts.values())


def per_day(actor: User, days: int = CHART_DAYS) -> list[Day]:
    """The last `days` days (UTC), oldest first, with findings first seen on each."""
    today = timezone.now().astimezone(dt.UTC).date()
    start = today - dt.timedelta(days=days - 1)
    rows = (
        findings_visible_to(actor)
        .filter(first_seen__date__gte=start)
        .annotate(day=TruncDate("first_seen", tzinfo=dt.UTC))
        .values("day", "severity")
        .annotate(n=Count("id"))
    )
    table = {start + dt.timedelta(days=i): dict.fromkeys(LABELS, 0) for i in range(days)}
    for row in rows:
        label = next(name for name in reversed(LABELS) if row["severity"] >= _FLOORS[name])
        if row["day"] in table:
            table[row["day"]][label] += row["n"]
    return [Day(day, counts) for day, counts in table.items()]
