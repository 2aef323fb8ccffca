"""A bounded on-disk FIFO of batches, kept while the collector cannot be reached.

Each batch is one file, ``<sequence>-<batch id>.batch``, written durably (temporary file,
fsync, rename, fsync of the directory) before `Spool.put` returns; the 20-digit sequence keeps
the order across restarts, and `Spool.peek` always gives the oldest batch. The shipper sends
it and calls `Spool.ack` once the collector took it, which deletes it.

**When full, the oldest batches go.** A put that would take the spool past ``max_bytes``
first drops the oldest batches to make room: during a long outage the freshest evidence matters
most (an intrusion in progress, not last week's logins), and a drop is never silent, since every
dropped batch is counted and reported through ``on_drop(batch_id, bytes)`` for the agent to
raise as an alert. `Spool.near_full` (above 80 %) lets the agent warn before anything is lost.
Room is made before the new batch is written, so a full disk can take it; a crash in between
loses only batches that were being dropped anyway, and the new batch is read again from the log
because its tail cursor was not committed.

On open the directory is listed again: ``*.tmp`` files left by a crash mid-put are removed (the
put never returned, so nobody relied on them), and the bound is enforced again in case
``max_bytes`` was lowered. One process uses a spool at a time (an exclusive lock is held).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from garrison.core.errors import ConflictError, UsageError, ValidationError
from garrison.core.files import fsync_dir

log = logging.getLogger("garrison.pipeline.spool")

BATCH_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_FILE_RE = re.compile(r"^(\d{20})-([A-Za-z0-9_.:-]{1,100})\.batch$")
NEAR_FULL_PERCENT = 80
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class _Entry:
    sequence: int
    batch_id: str
    size: int

    @property
    def name(self) -> str:
        return f"{self.sequence:020d}-{self.batch_id}.batch"


class Spool:
    """Batches waiting to be shipped, oldest first, at most `max_bytes` of payload in all."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        *,
        on_drop: Callable[[str, int], None] | None = None,
    ) -> None:
        if max_bytes < 1:
            raise UsageError("the spool needs a max_bytes of at least 1")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.on_drop = on_drop
        self.dropped_batches = 0
        self.dropped_bytes = 0
        self._entries: dict[str, _Entry] = {}  # oldest first
        self._size = 0
        self._next = 0
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConflictError(
                    f"spool {self.directory} is in use by another process",
                    hint="run one agent per spool directory",
                ) from None
            self._load()
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _load(self) -> None:
        found: list[_Entry] = []
        removed = False
        with os.scandir(self.directory) as listing:
            entries = list(listing)
        for entry in entries:
            if entry.name.endswith(".tmp"):
                os.unlink(entry.path)
                removed = True
                log.warning("spool %s: removed %s, left by a crash mid-put", self.directory, entry)
                continue
            match = _FILE_RE.match(entry.name)
            if match is None:
                continue
            size = entry.stat().st_size
            found.append(_Entry(int(match.group(1)), match.group(2), size))
        if removed:
            fsync_dir(self.directory)
        for item in sorted(found, key=lambda e: e.sequence):
            if item.batch_id in self._entries:
                continue  # cannot happen through `put`; keep the older copy
            self._entries[item.batch_id] = item
            self._size += item.size
        self._next = max((e.sequence for e in found), default=-1) + 1
        if self._size > self.max_bytes:
            self._make_room(0)
            fsync_dir(self.directory)

    # --- state -------------------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        """Bytes of payload held."""
        return self._size

    @property
    def count(self) -> int:
        """Batches held."""
        return len(self._entries)

    @property
    def near_full(self) -> bool:
        """Above 80 % of `max_bytes`: the agent should raise an alert before drops begin."""
        return self._size * 100 > self.max_bytes * NEAR_FULL_PERCENT

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self._entries

    # --- changes -----------------------------------------------------------------------------

    def _make_room(self, needed: int) -> None:
        """Drop the oldest batches until `needed` more bytes fit (directory not fsynced)."""
        while self._entries and self._size + needed > self.max_bytes:
            oldest = next(iter(self._entries.values()))
            self._remove(oldest)
            self.dropped_batches += 1
            self.dropped_bytes += oldest.size
            log.warning(
                "spool %s full: dropped batch %s (%d bytes)",
                self.directory,
                oldest.batch_id,
                oldest.size,
            )
            if self.on_drop is not None:
                self.on_drop(oldest.batch_id, oldest.size)

    def _remove(self, entry: _Entry) -> None:
        (self.directory / entry.name).unlink(missing_ok=True)
        del self._entries[entry.batch_id]
        self._size -= entry.size

    def put(self, batch_id: str, payload: bytes) -> bool:
        """Keep a batch durably; False (and nothing written) if `batch_id` is already held.

        The same batch put twice (re-read after a crash before the tail cursor was committed)
        is kept once.
        """
        if not BATCH_ID_RE.match(batch_id):
            raise ValidationError("batch_id must be 1-100 characters of A-Z a-z 0-9 _ . : -")
        if len(payload) > self.max_bytes:
            raise UsageError(
                f"batch {batch_id} is {len(payload)} bytes, more than the whole spool "
                f"({self.max_bytes} bytes)",
                hint="make batches smaller or the spool larger",
            )
        if batch_id in self._entries:
            return False
        self._make_room(len(payload))
        entry = _Entry(self._next, batch_id, len(payload))
        final = self.directory / entry.name
        tmp = self.directory / (entry.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink()
            raise
        os.close(fd)
        tmp.replace(final)
        fsync_dir(self.directory)
        self._next += 1
        self._entries[batch_id] = entry
        self._size += entry.size
        return True

    def peek(self) -> tuple[str, bytes] | None:
        """The oldest batch (id, payload), or None if the spool is empty."""
        while self._entries:
            oldest = next(iter(self._entries.values()))
            try:
                return oldest.batch_id, (self.directory / oldest.name).read_bytes()
            except FileNotFoundError:
                log.warning("spool %s: batch %s vanished", self.directory, oldest.batch_id)
                self._remove(oldest)
        return None

    def newest(self) -> tuple[str, bytes] | None:
        """The most recently put batch (id, payload), or None if the spool is empty."""
        if not self._entries:
            return None
        entry = next(reversed(self._entries.values()))
        try:
            return entry.batch_id, (self.directory / entry.name).read_bytes()
        except FileNotFoundError:
            return None

    def ack(self, batch_id: str) -> bool:
        """Delete a shipped batch; False if it is not held (already acked, or dropped)."""
        entry = self._entries.get(batch_id)
        if entry is None:
            return False
        self._remove(entry)
        fsync_dir(self.directory)
        return True

    def close(self) -> None:
        """Release the spool's lock."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
