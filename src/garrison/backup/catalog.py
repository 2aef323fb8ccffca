"""What the repository can restore: the recoverable window, gaps in the WAL, integrity.

A base backup is restorable from the moment it finished (its end point is reached by then) as
long as every WAL segment from its start onwards is archived without a gap; the window runs
from the oldest such backup's end to the archive time of the last segment that follows the
newest backup without a gap (like RDS's ``LatestRestorableTime``: what was committed before
that segment was switched is in the archive), or of the streamed part of the segment after it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from garrison.backup import wal
from garrison.backup.repo import (
    BaseEntry,
    Repository,
    WalEntry,
    base_key,
    parse_iso,
    stream_sha256,
)


@dataclass(frozen=True)
class Gap:
    """Segments missing between two archived ones (first and last missing, inclusive)."""

    timeline: int
    first: str
    last: str


@dataclass
class Catalog:
    """The repository's base backups and WAL, read once."""

    bases: list[BaseEntry]
    wal: dict[str, WalEntry]
    _segments: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def read(cls, repo: Repository) -> Catalog:
        entries = {e.name: e for e in repo.wal_entries()}
        catalog = cls(repo.bases(), entries)
        for name in entries:
            if wal.SEGMENT_RE.match(name):
                timeline, number = wal.segment_number(name)
                catalog._segments.setdefault(timeline, []).append(number)
        for numbers in catalog._segments.values():
            numbers.sort()
        return catalog

    def run_from(self, start_wal: str) -> list[WalEntry]:
        """The archived segments from `start_wal` on, without a gap."""
        timeline, number = wal.segment_number(start_wal)
        run = []
        while (entry := self.wal.get(wal.segment_name(timeline, number))) is not None:
            run.append(entry)
            number += 1
        return run

    def partial_after(self, run: list[WalEntry]) -> WalEntry | None:
        """The streamed part of the segment right after `run`, if there is one."""
        if not run:
            return None
        timeline, number = wal.segment_number(run[-1].name)
        return self.wal.get(wal.segment_name(timeline, number + 1) + wal.PARTIAL)

    def restorable(self, base: BaseEntry) -> bool:
        """Whether every segment the backup needs to be consistent is archived."""
        run = self.run_from(base.start_wal)
        needed = wal.segment_of(base.timeline, wal.parse_lsn(base.stop_lsn))
        return bool(run) and run[-1].name >= needed

    def intervals(self) -> list[tuple[dt.datetime, dt.datetime, BaseEntry]]:
        """(from, to, base backup) for each restorable base backup: from its end to the archive
        time of the last WAL that follows it without a gap (or of the streamed part after)."""
        spans = []
        for base in self.bases:
            if not self.restorable(base):
                continue
            run = self.run_from(base.start_wal)
            last = self.partial_after(run) or run[-1]
            begin = parse_iso(base.finished_at)
            spans.append((begin, max(parse_iso(last.archived_at), begin), base))
        return spans

    def base_for(self, moment: dt.datetime) -> BaseEntry | None:
        """The newest base backup from which `moment` is restorable (None: in no interval)."""
        found = [b for begin, end, b in self.intervals() if begin <= moment <= end]
        return found[-1] if found else None

    def window(self) -> tuple[dt.datetime, dt.datetime] | None:
        """(earliest, latest) restorable time, or None when nothing is restorable. A gap in
        the WAL can leave holes inside it: `base_for` says whether a moment is restorable."""
        spans = self.intervals()
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def gaps(self) -> list[Gap]:
        """Missing segments between the oldest base backup's start and the newest segment of
        each timeline."""
        found = []
        oldest = {b.timeline: wal.segment_number(b.start_wal)[1] for b in reversed(self.bases)}
        for timeline, numbers in sorted(self._segments.items()):
            previous = oldest.get(timeline, numbers[0]) - 1
            for number in numbers:
                if number <= previous:
                    continue
                if number > previous + 1:
                    found.append(
                        Gap(
                            timeline,
                            wal.segment_name(timeline, previous + 1),
                            wal.segment_name(timeline, number - 1),
                        )
                    )
                previous = number
        return found


@dataclass(frozen=True)
class Damage:
    """A repository file whose checksum or size is not what its entry says, or is missing."""

    key: str
    reason: str


def verify(repo: Repository, catalog: Catalog, *, full: bool = True) -> list[Damage]:
    """Check every sealed file against its catalog entry: its size, and with `full` its
    SHA-256. The streamed part of a segment is left out: it is replaced every few seconds."""
    damaged = []
    files = [
        (e.object, e.size, e.sha256)
        for e in catalog.wal.values()
        if not e.name.endswith(wal.PARTIAL)
    ]
    files += [(base_key(b.id), b.size, b.sha256) for b in catalog.bases]
    for key, size, sha256 in files:
        found = repo.storage.stat(key)
        if found is None:
            damaged.append(Damage(key, "missing"))
        elif found.size != size:
            damaged.append(Damage(key, f"{found.size} bytes where {size} were written"))
        elif full:
            with repo.open_sealed(key) as sealed:
                if stream_sha256(sealed) != sha256:
                    damaged.append(Damage(key, "its SHA-256 is not the one written"))
    return damaged
