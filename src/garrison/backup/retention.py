"""Retention: keep what restores any point of the last N days, expire the rest.

Every point from ``now - keep`` on must stay restorable, so the newest base backup finished by
then (the anchor) stays, with every newer base backup (the daily ones) and every WAL file from
the anchor's start on. Older base backups and the WAL before the anchor's start are expired;
WAL still needed by a kept base backup is never touched. Timeline history files are small and
always kept; leftovers of writes interrupted over an hour ago are swept. Nothing is expired
while no base backup is old enough to anchor the window: the repository then simply holds
less than `keep`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from garrison.backup import wal
from garrison.backup.catalog import Catalog
from garrison.backup.repo import BaseEntry, Repository, parse_iso

SWEEP_AFTER = dt.timedelta(hours=1)


@dataclass
class Plan:
    """What `expire` removes (and the base backup the window rests on)."""

    anchor: BaseEntry | None
    bases: list[str] = field(default_factory=list)
    wal: list[str] = field(default_factory=list)
    loose: list[str] = field(default_factory=list)  # leftovers of interrupted writes


def plan(catalog: Catalog, now: dt.datetime, keep: dt.timedelta) -> Plan:
    """What to expire so that every point after ``now - keep`` stays restorable."""
    horizon = now - keep
    restorable = [b for b in catalog.bases if catalog.restorable(b)]
    anchors = [b for b in restorable if parse_iso(b.finished_at) <= horizon]
    if not anchors:
        return Plan(anchor=None)
    anchor = anchors[-1]
    anchor_tl, anchor_number = wal.segment_number(anchor.start_wal)
    result = Plan(anchor=anchor)
    kept_from = parse_iso(anchor.finished_at)
    result.bases = [b.id for b in catalog.bases if parse_iso(b.finished_at) < kept_from]
    for name in catalog.wal:
        if name.endswith(".history"):
            continue
        segment = name[:24]
        timeline, number = wal.segment_number(segment)
        if timeline < anchor_tl or (timeline == anchor_tl and number < anchor_number):
            result.wal.append(name)
    return result


def expire(repo: Repository, now: dt.datetime, keep: dt.timedelta) -> Plan:
    """Carry out `plan`: base backups first (so no kept backup loses its WAL), then WAL."""
    todo = plan(Catalog.read(repo), now, keep)
    for backup_id in todo.bases:
        repo.delete_base(backup_id)
    for name in todo.wal:
        repo.delete_wal(name)
    stale = (now - SWEEP_AFTER).timestamp()
    for key in repo.loose():
        found = repo.storage.stat(key)
        if found is not None and found.mtime < stale:  # an interrupted write nobody finishes
            repo.storage.delete(key)
            todo.loose.append(key)
    return todo
