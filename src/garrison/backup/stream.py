"""Continuous WAL streaming: ``pg_receivewal`` on a replication slot, sealed as it comes.

``archive_command`` ships a WAL file when it is full or ``archive_timeout`` has passed, so up
to 5 minutes of changes may exist only on the database host. The streamer narrows that to
seconds: ``pg_receivewal`` receives WAL as it is written into a spool directory, and every
`partial_every` seconds the segment being received is sealed into the repository as
``NAME.partial`` (replacing the previous part); a finished segment is sealed as ``NAME`` (the
same file ``archive_command`` sends, which the repository then accepts as already there) and
its spool copy and partial are removed. A replication slot keeps the server from removing WAL
the streamer has not received; ``max_slot_wal_keep_size`` (``garrison db configure
--streaming``) caps what it keeps if the streamer stays away.

The spool holds WAL in the clear, as ``pg_wal`` does: keep it on the database host (or a disk
as trusted); what leaves the host is sealed.
"""

from __future__ import annotations

import datetime as dt
import logging
import subprocess  # nosec B404  # pg_receivewal receives the WAL
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from garrison.backup import postgres, report, wal
from garrison.backup.repo import Repository
from garrison.backup.seal import BackupError, child

log = logging.getLogger("garrison.backup")
SWEEP_S: Final = 0.5
RESTART_S: Final = 5.0
REPORT_EVERY_S: Final = 60.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Streamer:
    """Receives WAL from one cluster into the repository."""

    repo: Repository
    spool: Path
    host: str
    port: int
    user: str
    slot: str
    os_user: str | None
    partial_every: float = 5.0
    events: Path | None = None
    _sealed_part: tuple[str, int, int] | None = field(default=None, init=False)
    _part_at: float = field(default=0.0, init=False)
    _last_failure: tuple[str, float] = field(default=("", 0.0), init=False)

    def _connection(self) -> list[str]:
        return ["--host", self.host, "--port", str(self.port), "--username", self.user,
                "--no-password"]  # fmt: skip

    def ensure_slot(self) -> None:
        """Create the replication slot unless it exists."""
        argv = [postgres.program("pg_receivewal"), *self._connection(), "--slot", self.slot]
        made = postgres.run([*argv, "--create-slot", "--if-not-exists"], self.os_user)
        if made.returncode != 0:
            raise BackupError(f"could not create the replication slot: {made.stderr.strip()}")

    def sweep(self, now: dt.datetime | None = None) -> int:
        """Seal finished segments (then remove them from the spool) and, when due, the one being
        received; how many whole segments were sealed."""
        now = now or _now()
        sealed = 0
        for path in sorted(self.spool.iterdir()):
            name = path.name
            if not name.endswith(wal.PARTIAL) and (
                wal.SEGMENT_RE.match(name) or wal.OTHER_RE.match(name)
            ):
                self.repo.put_wal(name, path, now)
                path.unlink()
                sealed += 1
        for path in sorted(self.spool.glob(f"*{wal.PARTIAL}")):
            segment = path.name.removesuffix(wal.PARTIAL)
            stat = path.stat()
            state = (segment, stat.st_size, stat.st_mtime_ns)
            due = time.monotonic() - self._part_at >= self.partial_every
            if state != self._sealed_part and due and self.repo.wal_entry(segment) is None:
                self.repo.put_partial(segment, path, now)
                self._sealed_part, self._part_at = state, time.monotonic()
        return sealed

    def run(self, stop: threading.Event) -> None:
        """Receive until `stop`; pg_receivewal is restarted when it ends."""
        self.ensure_slot()
        argv = postgres.as_owner(
            [postgres.program("pg_receivewal"), *self._connection(), "--slot", self.slot,
             "--directory", str(self.spool), "--synchronous", "--no-loop"],
            self.os_user,
        )  # fmt: skip
        while not stop.is_set():
            with child(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE) as receiver:
                while receiver.poll() is None and not stop.is_set():
                    self._sweep_reported()
                    stop.wait(SWEEP_S)
                if receiver.poll() is None:
                    receiver.terminate()
                said = (receiver.communicate(timeout=30)[1] or b"").decode(errors="replace")
            self._sweep_reported()
            if not stop.is_set():
                message = f"pg_receivewal stopped: {said.strip()[-300:] or 'no reason given'}"
                log.error("%s", message)
                report.append(self.events, report.event("stream", "failure", message))
                stop.wait(RESTART_S)

    def _sweep_reported(self) -> None:
        """Sweep; a failure is logged and reported, the same one at most once a minute."""
        try:
            self.sweep()
        except Exception as exc:  # reported; the next sweep tries again
            said = report.reason(exc)
            now = time.monotonic()
            if said != self._last_failure[0] or now - self._last_failure[1] >= REPORT_EVERY_S:
                self._last_failure = (said, now)
                log.error("streaming: %s", said)
                report.append(self.events, report.event("stream", "failure", said))
