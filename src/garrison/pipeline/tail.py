"""Following one log file across rotation, truncation and restarts, with a durable cursor.

The contract is **at-least-once**. `Tailer.poll` hands out complete lines, each with the
`Position` just after it; nothing is remembered until the caller passes a position to
`Tailer.commit`, which writes the cursor durably (temporary file, fsync, rename, fsync of the
directory). The agent commits only once the lines are safely handed on (written to the spool),
preferably `Tailer.position` (which also records a switch to a new, still empty file), so a
crash at any moment re-reads at most the lines read since the last commit, and never skips one.
The shipper gives every batch an id and the collector stores a batch id once, which turns
the re-sent batches into exactly-once storage downstream.

What the tailer copes with:

* **rotation by rename** (logrotate's default): the old file is read to its end through the
  descriptor still open on it, then the tailer switches to the new file at the path;
* **copytruncate**: the file shrinks below the read position, or its first bytes change, and
  reading restarts at byte 0 of the same file;
* **deletion and re-creation**, and a file **missing at start**: nothing is read until a file
  appears at the path;
* **restart**: the cursor names the file by device, inode and a fingerprint (SHA-256 of its
  first bytes, up to 1024), so the same file is recognised even if its inode was reused by
  another one, and a file rotated while the agent was down is found again next to the path
  (``auth.log.1``) and finished before the new one is started.

Known limits, shared with ``tail -F``: a file created and rotated away again between two polls
(or between the last commit and a restart) is never seen; lines a writer appends to a renamed
file after the tailer has read it to its end and switched are not read; an unfinished last line
of a file the tailer leaves (rotated or deleted) is handed out as a line, since nobody will
finish it; a line longer than ``max_line_bytes`` is handed out in pieces of that size; and a
truncated file refilled past the read position with the very same first bytes looks unchanged.

A `Tailer` is not thread-safe: one thread polls and commits.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import msgspec

from garrison.core.errors import GarrisonError, UsageError
from garrison.core.files import replace_private

log = logging.getLogger("garrison.pipeline.tail")

FINGERPRINT_BYTES = 1024
READ_CHUNK = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024
CURSOR_VERSION = 1
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip")


class CursorError(GarrisonError):
    """The cursor file cannot be read back (it is always replaced whole, so this is damage)."""

    code = "cursor_corrupt"


@dataclass(frozen=True)
class Position:
    """Where reading stands: opaque to callers, who only hand it back to `Tailer.commit`."""

    device: int
    inode: int
    offset: int
    fingerprint: str
    fingerprint_size: int


@dataclass(frozen=True)
class Line:
    """One complete line, without its newline, and the position just after it."""

    data: bytes
    position: Position


class _Cursor(msgspec.Struct, frozen=True):
    """The cursor file's JSON form."""

    version: int
    device: int
    inode: int
    offset: int
    fingerprint: str
    fingerprint_size: int


_decode_cursor = msgspec.json.Decoder(_Cursor).decode
_encode = msgspec.json.Encoder().encode


def fingerprint(fd: int, size: int) -> str:
    """SHA-256 (hex) of the first `size` bytes of the open file `fd`."""
    data = os.pread(fd, size, 0) if size else b""
    return hashlib.sha256(data).hexdigest() if len(data) == size else ""


class _Open:
    """The file being read: its descriptor, identity, read offset and fingerprint."""

    def __init__(self, fd: int, name: str) -> None:
        st = os.fstat(fd)
        self.fd = fd
        self.name = name
        self.offset = 0
        self.device, self.inode = st.st_dev, st.st_ino
        self.fp_size = min(st.st_size, FINGERPRINT_BYTES)
        self.fp = fingerprint(fd, self.fp_size)

    def position(self, offset: int) -> Position:
        return Position(self.device, self.inode, offset, self.fp, self.fp_size)

    def refresh(self) -> bool:
        """Re-check size and first bytes; False if the file was truncated or rewritten."""
        size = os.fstat(self.fd).st_size
        if size < self.offset or fingerprint(self.fd, self.fp_size) != self.fp:
            return False
        self.cover(size)
        return True

    def cover(self, end: int) -> None:
        """Extend the fingerprint over bytes up to `end` read so far (while under 1024)."""
        if self.fp_size < FINGERPRINT_BYTES and end > self.fp_size:
            self.fp_size = min(end, FINGERPRINT_BYTES)
            self.fp = fingerprint(self.fd, self.fp_size)

    def restart(self) -> None:
        """Read again from byte 0 (after copytruncate)."""
        self.offset = 0
        self.fp_size = min(os.fstat(self.fd).st_size, FINGERPRINT_BYTES)
        self.fp = fingerprint(self.fd, self.fp_size)

    def matches(self, cursor: _Cursor) -> bool:
        """Whether this is the file `cursor` names (same inode and same first bytes)."""
        return (
            (self.device, self.inode) == (cursor.device, cursor.inode)
            and os.fstat(self.fd).st_size >= cursor.offset
            and fingerprint(self.fd, cursor.fingerprint_size) == cursor.fingerprint
        )


class Tailer:
    """Follows the file at `path`, remembering durably in `cursor_file` how far it was read."""

    def __init__(
        self, path: Path, cursor_file: Path, *, max_line_bytes: int = MAX_LINE_BYTES
    ) -> None:
        if max_line_bytes < 1:
            raise UsageError("max_line_bytes must be at least 1")
        self.path = Path(path)
        self.cursor_file = Path(cursor_file)
        self.max_line_bytes = max_line_bytes
        self._file: _Open | None = None
        self._resume = self._load_cursor()
        self._position: Position | None = None
        self._open_next()  # hold the file from now on, so that a rotation cannot hide it

    # --- cursor ------------------------------------------------------------------------------

    def _load_cursor(self) -> _Cursor | None:
        try:
            raw = self.cursor_file.read_bytes()
        except FileNotFoundError:
            return None
        try:
            cursor = _decode_cursor(raw)
        except msgspec.DecodeError as exc:
            raise CursorError(
                f"tail cursor {self.cursor_file} is damaged: {exc}",
                hint="delete it to read the file again from its start",
            ) from exc
        if cursor.version != CURSOR_VERSION:
            raise CursorError(f"tail cursor {self.cursor_file} has unknown version")
        return cursor

    def commit(self, position: Position) -> None:
        """Durably remember `position`: after a restart, reading resumes exactly there.

        Call it only once every line up to `position` is safely handed on (spooled).
        """
        cursor = _Cursor(
            CURSOR_VERSION,
            position.device,
            position.inode,
            position.offset,
            position.fingerprint,
            position.fingerprint_size,
        )
        replace_private(self.cursor_file, _encode(cursor))

    @property
    def position(self) -> Position | None:
        """The position after everything `poll` returned, including a switch to a new file.

        Committing it (rather than the last line's) after a poll keeps the cursor on the
        newest file even when that file has no lines yet.
        """
        if self._file is not None:
            return self._file.position(self._file.offset)
        return self._position

    # --- opening -----------------------------------------------------------------------------

    def _try_open(self, path: Path) -> _Open | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return _Open(fd, str(path))
        except BaseException:
            os.close(fd)
            raise

    def _rotated_copy(self, cursor: _Cursor) -> _Open | None:
        """The file `cursor` names, if it was renamed next to the path (``auth.log.1``).

        Its read offset is the cursor's, or 0 if its first bytes changed since (truncated and
        written again while we were stopped): then all of it is new.
        """
        try:
            entries = sorted(os.scandir(self.path.parent), key=lambda e: e.name)
        except FileNotFoundError:
            return None
        for entry in entries:
            name = entry.name
            if not name.startswith(self.path.name) or name == self.path.name:
                continue
            if name.endswith(COMPRESSED):
                continue  # a compressed copy is a new inode: one equal to ours was reused
            try:
                if not entry.is_file() or entry.inode() != cursor.inode:
                    continue
            except OSError:
                continue
            found = self._try_open(Path(entry.path))
            if found is None:
                continue
            if found.device != cursor.device:
                os.close(found.fd)
                continue
            if found.matches(cursor):
                found.offset = cursor.offset
            return found
        return None

    def _open_next(self) -> bool:
        """Open the file to read next (at the cursor, the first time); False if none yet."""
        opened = self._try_open(self.path)
        cursor = self._resume
        if cursor is not None:
            if opened is not None and opened.matches(cursor):
                opened.offset = cursor.offset
            else:
                rotated = self._rotated_copy(cursor)
                if rotated is not None:
                    if opened is not None:
                        os.close(opened.fd)
                    opened = rotated
                    log.info("tail %s: finishing %s, rotated while stopped", self.path, opened.name)
            if opened is None:
                return False
            self._resume = None
        if opened is None:
            return False
        self._file = opened
        return True

    def _path_moved(self) -> bool:
        """Whether the path now names another file than the one being read."""
        if self._file is None:
            return False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed or deleted, not re-created yet: keep reading what we have
        return (st.st_dev, st.st_ino) != (self._file.device, self._file.inode)

    def _close_file(self) -> None:
        if self._file is not None:
            self._position = self._file.position(self._file.offset)
            os.close(self._file.fd)
            self._file = None

    def close(self) -> None:
        """Release the open file (the committed cursor stays as it is)."""
        self._close_file()

    def __enter__(self) -> Tailer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------------

    def _read(self, current: _Open, limit: int) -> list[Line]:
        """Up to `limit` complete lines from the read offset; fewer means the end was reached."""
        lines: list[Line] = []
        buf = b""
        base = current.offset  # file offset of buf[0]
        start = 0  # first byte of buf not yet handed out
        scan = 0  # where to look for the next newline
        while len(lines) < limit:
            nl = buf.find(b"\n", scan)
            if 0 <= nl <= start + self.max_line_bytes:
                lines.append(Line(buf[start:nl], current.position(base + nl + 1)))
                start = scan = nl + 1
                continue
            if nl >= 0 or len(buf) - start >= self.max_line_bytes:
                end = start + self.max_line_bytes
                lines.append(Line(buf[start:end], current.position(base + end)))
                start = scan = end
                continue
            chunk = os.pread(current.fd, READ_CHUNK, base + len(buf))
            if not chunk:
                break
            current.cover(base + len(buf) + len(chunk))
            scan = len(buf) - start
            buf = buf[start:] + chunk
            base += start
            start = 0
        current.offset = base + start
        return lines

    def poll(self, max_lines: int = 1000) -> list[Line]:
        """The complete lines written since the last poll, at most `max_lines`, in order."""
        if max_lines < 1:
            raise UsageError("max_lines must be at least 1")
        lines: list[Line] = []
        while len(lines) < max_lines:
            if self._file is None and not self._open_next():
                break
            current = self._file
            if current is None:
                break
            if not current.refresh():
                log.info("tail %s: truncated or rewritten, reading from the start", self.path)
                current.restart()
            # Look at the path before reading: whatever reached the old file before it was
            # renamed is then read by the read below, to the end.
            moved = self._path_moved()
            lines += self._read(current, max_lines - len(lines))
            if len(lines) >= max_lines or not moved:
                break
            rest = os.pread(current.fd, self.max_line_bytes, current.offset)
            if b"\n" in rest or len(rest) >= self.max_line_bytes:
                continue  # the writer appended after the read: read those lines first
            if rest:  # an unfinished last line nobody will complete: hand it out
                current.offset += len(rest)
                current.cover(current.offset)
                lines.append(Line(rest, current.position(current.offset)))
            log.info("tail %s: rotated, switching to the new file", self.path)
            self._close_file()
        return lines
