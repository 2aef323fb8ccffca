"""The Backups page: each database's recoverable window, last base backup, archiving lag, the
drill history, and a 30-day timeline, from the backup engine's events in the `system` stream
(shipped by each database host's agent: see garrison.backup.report)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from garrison.backup.report import PROCESS
from garrison.server.accounts.roles import READ_ALL
from garrison.server.accounts.views import console_user, role_required
from garrison.server.logs.queries import MAX_LIMIT, recent

STREAM = "system"
DAYS = 30
WIDTH, ROW, LABEL = 600, 28, 120  # the timeline, in SVG user units
SILENT = dt.timedelta(minutes=20)  # no check for this long: the backup role is not running


@dataclass(frozen=True)
class Mark:
    """A base backup (tick) or a drill (dot) on the timeline."""

    x: float
    ok: bool
    title: str


@dataclass(frozen=True)
class Lane:
    """One database host's row of the timeline."""

    host: str
    y: int
    window_x: float
    window_width: float
    window_title: str
    backups: list[Mark]
    drills: list[Mark]


def _age(moment: str, now: dt.datetime) -> dt.timedelta:
    try:
        return now - dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return dt.timedelta.max


def _x(moment: str, start: dt.datetime, span: float) -> float | None:
    try:
        when = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return None
    offset = (when - start).total_seconds() / span
    return round(LABEL + max(0.0, min(1.0, offset)) * WIDTH, 1)


def _lanes(
    latest: dict[str, dict[str, Any]], events: list[dict[str, Any]], now: dt.datetime
) -> list[Lane]:
    start = now - dt.timedelta(days=DAYS)
    span = (now - start).total_seconds()
    lanes = []
    for i, (host, check) in enumerate(sorted(latest.items())):
        left = _x(check.get("recoverable_from") or "", start, span)
        right = _x(check.get("recoverable_to") or "", start, span)
        mine = [e for e in events if e.get("host") == host]
        backups = [
            Mark(x, e["outcome"] == "success", f"base backup {e['time']}: {e.get('message', '')}")
            for e in mine
            if e.get("activity") == "base_backup" and (x := _x(e["time"], start, span))
        ]
        drills = [
            Mark(x, e["outcome"] == "success", f"drill {e['time']}: {e.get('message', '')}")
            for e in mine
            if e.get("activity") == "drill" and (x := _x(e["time"], start, span))
        ]
        lanes.append(
            Lane(
                host=host,
                y=i * ROW,
                window_x=left or 0.0,
                window_width=max(0.0, (right or 0.0) - (left or 0.0)) if left and right else 0.0,
                window_title=(
                    f"restorable {check.get('recoverable_from')} to {check.get('recoverable_to')}"
                ),
                backups=backups,
                drills=drills,
            )
        )
    return lanes


@role_required(READ_ALL)
@require_GET
def page(request: HttpRequest) -> HttpResponse:
    """The Backups page."""
    actor = console_user(request)
    now = timezone.now()
    since = (now - dt.timedelta(days=DAYS)).isoformat()
    ours = f'process="{PROCESS}"'

    def of(activity: str, limit: int) -> list[dict[str, Any]]:
        query = f"{ours} AND activity={activity}"
        return recent(actor, STREAM, query, since=since, limit=limit)

    drills, base_backups = of("drill", 200), of("base_backup", 200)
    latest: dict[str, dict[str, Any]] = {}
    for event in of("check", MAX_LIMIT):  # newest first: each host's first is its latest
        latest.setdefault(str(event.get("host", "")), event)
    for check in latest.values():
        check["silent"] = _age(check["time"], now) > SILENT
    events = drills + base_backups
    lanes = _lanes(latest, events, now)
    context = {
        "databases": [latest[h] for h in sorted(latest)],
        "drills": drills[:50],
        "base_backups": base_backups[:50],
        "lanes": lanes,
        "chart_width": LABEL + WIDTH + 10,
        "chart_height": max(1, len(lanes)) * ROW + 20,
        "axis_y": max(1, len(lanes)) * ROW + 12,
        "axis_left": LABEL,
        "axis_right": LABEL + WIDTH,
        "since": (now - dt.timedelta(days=DAYS)).strftime("%Y-%m-%d"),
        "until": now.strftime("%Y-%m-%d"),
    }
    return render(request, "backups/page.html", context)
