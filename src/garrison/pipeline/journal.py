"""Following the systemd journal from a durable cursor, through ``journalctl -o json``.

Same contract as `garrison.pipeline.tail.Tailer` (at-least-once; the caller commits a position
once the lines are spooled): `JournalTailer.poll` hands out entries as lines, each with the
journal cursor just after it, and `JournalTailer.commit` writes that cursor durably. After a
restart ``journalctl --after-cursor`` resumes at the next entry. With no cursor yet it starts
at the oldest entry the journal still holds (nothing is skipped).

Each entry becomes one syslog-shaped line, ``2026-12-01T10:00:00.123456Z host ident[pid]:
message``, from the entry's own realtime timestamp (so the time is exact and zoned), its
``_HOSTNAME``, ``SYSLOG_IDENTIFIER`` (else ``_COMM``) and ``_PID`` (else ``SYSLOG_PID``): the
sshd, regex and other syslog-carried parsers read it as they read a file's line.

``journalctl`` runs as one long-lived child (``--follow``) whose output is read without
blocking; when it exits (journal unreadable, binary missing) the reason is logged and it is
started again on a later poll, from the last position handed out.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess  # nosec B404  # journalctl, an argument list without a shell
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import msgspec

from garrison.core.errors import GarrisonError, UsageError
from garrison.core.files import replace_private

log = logging.getLogger("garrison.pipeline.journal")

READ_CHUNK = 256 * 1024
RESTART_SECONDS = 5.0
FIELDS = "_HOSTNAME,SYSLOG_IDENTIFIER,_COMM,_PID,SYSLOG_PID,MESSAGE"


@dataclass(frozen=True)
class JournalPosition:
    """The journal cursor of the last entry handed out (opaque to callers)."""

    cursor: str


@dataclass(frozen=True)
class JournalLine:
    """One entry as a syslog-shaped line, and the position just after it."""

    data: bytes
    position: JournalPosition


class _Cursor(msgspec.Struct, frozen=True):
    cursor: str


_decode_cursor = msgspec.json.Decoder(_Cursor).decode
_decode_entry = msgspec.json.Decoder(dict[str, object]).decode


def _text(value: object) -> str:
    """A journal field: a string, or (binary or invalid UTF-8) a list of byte values."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        return bytes(value).decode("utf-8", "backslashreplace")
    return ""


def entry_line(entry: dict[str, object]) -> bytes:
    """The syslog-shaped line of one ``journalctl -o json`` entry."""
    micros = int(str(entry.get("__REALTIME_TIMESTAMP", "0")))
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    host = _text(entry.get("_HOSTNAME")) or "-"
    ident = _text(entry.get("SYSLOG_IDENTIFIER")) or _text(entry.get("_COMM")) or "unknown"
    pid = _text(entry.get("_PID")) or _text(entry.get("SYSLOG_PID"))
    tag = f"{ident}[{pid}]" if pid.isdigit() else ident
    return f"{stamp} {host} {tag}: {_text(entry.get('MESSAGE'))}".encode()


class JournalTailer:
    """Follows the journal (one unit of it, or all) from the cursor kept in `cursor_file`.

    `directory` reads journal files there (such as ``systemd-journal-remote`` writes) instead
    of this machine's journal.
    """

    def __init__(
        self,
        unit: str | None,
        cursor_file: Path,
        *,
        directory: Path | None = None,
        journalctl: str = "journalctl",
    ) -> None:
        self.unit = unit
        self.cursor_file = Path(cursor_file)
        self.directory = directory
        self.journalctl = journalctl
        self._position = self._load_cursor()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._retry_at = 0.0

    def _load_cursor(self) -> JournalPosition | None:
        try:
            raw = self.cursor_file.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return JournalPosition(_decode_cursor(raw).cursor)
        except msgspec.DecodeError as exc:
            raise GarrisonError(
                f"journal cursor {self.cursor_file} is damaged: {exc}",
                hint="delete it to read the journal again from its oldest entry",
            ) from exc

    def commit(self, position: JournalPosition) -> None:
        """Durably remember `position`: after a restart, reading resumes at the next entry."""
        replace_private(self.cursor_file, msgspec.json.encode(_Cursor(position.cursor)))

    @property
    def position(self) -> JournalPosition | None:
        """The position after everything `poll` returned (or the committed one)."""
        return self._position

    def command(self) -> list[str]:
        """The ``journalctl`` invocation for the current position."""
        executable = shutil.which(self.journalctl)
        if executable is None:
            raise UsageError(
                f"{self.journalctl} not found: the journal cannot be followed",
                hint="install systemd, or watch a log file instead",
            )
        args = [executable, "--output=json", f"--output-fields={FIELDS}", "--follow"]
        args += ["--no-pager", "--quiet", "--all"]
        if self._position is not None:
            args.append(f"--after-cursor={self._position.cursor}")
        else:
            args.append("--no-tail")
        if self.directory is not None:
            args.append(f"--directory={self.directory}")
        if self.unit:
            args.append(f"--unit={self.unit}")
        return args

    def _start(self) -> subprocess.Popen[bytes] | None:
        if time.monotonic() < self._retry_at:
            return None
        process = subprocess.Popen(  # noqa: S603  # nosec B603  # fixed argument list
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        assert process.stdout is not None  # noqa: S101  # nosec B101  # asked for a pipe
        os.set_blocking(process.stdout.fileno(), False)
        self._buffer = b""
        return process

    def _read(self, process: subprocess.Popen[bytes]) -> bool:
        """Move what journalctl has written into the buffer; False once it has exited."""
        assert process.stdout is not None  # noqa: S101  # nosec B101  # asked for a pipe
        while True:
            try:
                chunk = os.read(process.stdout.fileno(), READ_CHUNK)
            except BlockingIOError:
                return True
            if not chunk:
                self._ended(process)
                return False
            self._buffer += chunk
            if len(chunk) < READ_CHUNK:
                return True

    def _ended(self, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        assert process.stderr is not None  # noqa: S101  # nosec B101  # asked for a pipe
        reason = process.stderr.read().decode("utf-8", "replace").strip()
        log.error(
            "journal: journalctl exited with %s (%s); trying again in %.0f s",
            code,
            reason or "no message",
            RESTART_SECONDS,
        )
        self._close_process()
        self._retry_at = time.monotonic() + RESTART_SECONDS

    def poll(self, max_lines: int = 1000) -> list[JournalLine]:
        """Up to `max_lines` new entries (none when there are none yet)."""
        if self._process is None:
            self._process = self._start()
            if self._process is None:
                return []
        lines: list[JournalLine] = []
        while len(lines) < max_lines:
            if b"\n" not in self._buffer and not (
                self._process is not None and self._read(self._process) and b"\n" in self._buffer
            ):
                break
            raw, self._buffer = self._buffer.split(b"\n", 1)
            if not raw.strip():
                continue
            try:
                entry = _decode_entry(raw)
                position = JournalPosition(str(entry["__CURSOR"]))
            except (msgspec.DecodeError, KeyError) as exc:  # kept: the parser makes it raw
                log.error("journal: journalctl wrote an entry that is not JSON: %s", exc)
                lines.append(JournalLine(raw, self._position or JournalPosition("")))
                continue
            lines.append(JournalLine(entry_line(entry), position))
            self._position = position
        return lines

    def _close_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        """Stop journalctl."""
        self._close_process()

    def __enter__(self) -> JournalTailer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
