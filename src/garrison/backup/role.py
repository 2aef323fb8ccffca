"""The backup role on the database host (``garrison db run``): checks, daily base backups,
retention, each reported as an event.

Every `check_every` it assesses the repository and the archiver (`garrison.backup.health`;
every file's checksum once a day, sizes in between);
when the newest base backup is older than `backup_every` it takes one and then expires what
the retention window no longer needs. Drills need the private key, which never lives on the
database host: they run elsewhere (``garrison db drill --every``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from garrison.backup import base, report, retention
from garrison.backup.health import assess
from garrison.backup.repo import Repository, parse_iso
from garrison.core.errors import GarrisonError

log = logging.getLogger("garrison.backup")
RETRY_AFTER = dt.timedelta(hours=1)
FULL_CHECK_EVERY = dt.timedelta(days=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class BackupRole:
    """What the role backs up, how often, and where it reports."""

    repo: Repository
    host: str
    port: int
    user: str
    os_user: str | None
    pgdata: Path | None
    keep: dt.timedelta
    backup_every: dt.timedelta
    check_every: dt.timedelta
    events: Path | None
    retry_after: dt.timedelta = RETRY_AFTER
    _retry_at: dt.datetime | None = field(default=None, init=False)
    _full_at: dt.datetime | None = field(default=None, init=False)

    def _report(self, activity: str, ok: bool, message: str, **fields: object) -> None:
        (log.info if ok else log.error)("%s: %s", activity, message)
        report.append(
            self.events,
            report.event(activity, "success" if ok else "failure", message, **fields),
        )

    def backup_due(self, now: dt.datetime) -> bool:
        """Whether a base backup is due (not within `retry_after` of a failed one)."""
        if self._retry_at is not None and now < self._retry_at:
            return False
        bases = self.repo.bases()
        return not bases or now - parse_iso(bases[-1].finished_at) >= self.backup_every

    def step(self, now: dt.datetime | None = None) -> None:
        """One round: a base backup and expiry when due, then a check. A failing step is
        reported and the role goes on."""
        now = now or _now()
        try:
            self._backup_if_due(now)
        except Exception as exc:  # reported; the check below still runs
            self._report("base_backup", False, f"base backup step failed: {report.reason(exc)}")
        try:
            health = assess(
                self.repo, cluster=(self.host, self.port), os_user=self.os_user,
                pgdata=self.pgdata, now=now, full=self._full_due(now),
            )  # fmt: skip
        except Exception as exc:  # reported; the next round tries again
            self._report("check", False, f"check failed: {report.reason(exc)}")
            return
        problems = health.problems
        self._report("check", not problems, "; ".join(problems) or "healthy", **health.fields())

    def _full_due(self, now: dt.datetime) -> bool:
        """Whether this check reads every file to its checksum (daily), or sizes only."""
        if self._full_at is None or now - self._full_at >= FULL_CHECK_EVERY:
            self._full_at = now
            return True
        return False

    def _backup_if_due(self, now: dt.datetime) -> None:
        if self.backup_due(now):
            try:
                entry = base.take(
                    self.repo, host=self.host, port=self.port, user=self.user, os_user=self.os_user
                )
            except GarrisonError as exc:
                self._retry_at = now + self.retry_after
                self._report(
                    "base_backup", False,
                    f"base backup failed: {exc.message} (next attempt in {self.retry_after})",
                )  # fmt: skip
            else:
                self._retry_at = None
                self._report(
                    "base_backup", True, f"base backup {entry.id} taken",
                    base=entry.id, bytes=entry.size, stop_lsn=entry.stop_lsn,
                )  # fmt: skip
                done = retention.expire(self.repo, now, self.keep)
                self._report(
                    "expire", True,
                    f"{len(done.bases)} base backups and {len(done.wal)} WAL files expired",
                    base_backups=done.bases, wal_files=len(done.wal),
                )  # fmt: skip

    def run(self, stop: threading.Event) -> None:
        """Rounds until `stop` is set."""
        while not stop.is_set():
            self.step()
            stop.wait(self.check_every.total_seconds())
