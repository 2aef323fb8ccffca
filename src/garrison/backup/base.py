"""Base backups: ``pg_basebackup`` streamed as a tar, sealed on the way into the repository.

``pg_basebackup -D - -F tar -X none``: the data directory as one tar on stdout (its
``backup_manifest`` inside), compressed and encrypted as it arrives, never on disk in the
clear. The WAL it needs comes from the archive: with ``-X none`` the server waits, at the
end of the backup, until the last WAL file it needs is archived, so a backup that returns is
restorable; when archiving is broken the server says it is still waiting (after a minute),
and the backup stops with that reason instead of waiting for ever. Where it starts
(``backup_label``) and ends (the manifest's WAL range) is read from the tar as it passes.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess  # nosec B404  # pg_basebackup makes the backup
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from garrison.backup import postgres, wal
from garrison.backup.repo import BaseEntry, Repository, iso
from garrison.backup.seal import BackupError, child, seal

_START = re.compile(r"^START WAL LOCATION: (\S+) ", re.MULTILINE)
_TIMELINE = re.compile(r"^START TIMELINE: (\d+)", re.MULTILINE)
_END = re.compile(r'"End-LSN": ?"([0-9A-F]+/[0-9A-F]+)"')
_STALLED = "still waiting for all required WAL segments to be archived"
_BLOCK = 512
_KEEP = 64 * 1024  # of backup_manifest, whose end holds the WAL range
Clock = Callable[[], dt.datetime]


def _member_size(field: bytes) -> int:
    """A tar header's size: octal digits, or base-256 (first byte 0x80) for 8 GiB and more."""
    if field[0] & 0x80:
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip() or b"0"
    try:
        return int(text, 8)
    except ValueError:
        raise BackupError(f"pg_basebackup's tar has a header with size {text!r}") from None


class TarTap:
    """Passes a tar stream through while keeping ``backup_label`` and the end of
    ``backup_manifest``: where the backup starts (and on which timeline) and where it ends.
    Only headers and those two members are copied; the data of others is skipped by count."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.kept: dict[str, bytearray] = {}
        self._header = bytearray()  # a header split across reads
        self._member: bytearray | None = None  # where the current member's data goes
        self._left = 0  # bytes of the current member's data (with padding) still to come

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self._parse(memoryview(chunk))
        return chunk

    def _parse(self, view: memoryview) -> None:
        at, end = 0, len(view)
        while at < end:
            if self._left:
                take = min(self._left, end - at)
                if self._member is not None:
                    self._member += view[at : at + take]
                    del self._member[: max(0, len(self._member) - _KEEP)]
                at += take
                self._left -= take
                if not self._left:
                    self._member = None
                continue
            take = min(_BLOCK - len(self._header), end - at)
            self._header += view[at : at + take]
            at += take
            if len(self._header) == _BLOCK:
                self._start_member(bytes(self._header))
                self._header.clear()

    def _start_member(self, header: bytes) -> None:
        if not header.strip(b"\0"):
            return  # the end-of-archive blocks
        name = header[:100].split(b"\0", 1)[0].decode(errors="replace")
        size = _member_size(header[124:136])
        self._left = -(-size // _BLOCK) * _BLOCK
        if name in {"backup_label", "backup_manifest"}:
            self._member = self.kept[name] = bytearray()

    def text(self, name: str) -> str:
        return bytes(self.kept.get(name, b"")).rstrip(b"\0").decode(errors="replace")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _watch(process: subprocess.Popen[bytes], said: list[bytes]) -> None:
    """Collect pg_basebackup's stderr; stop it when the server says it is still waiting for
    WAL to be archived (archiving is broken: it would wait for ever)."""
    for line in process.stderr or ():
        said.append(line)
        if _STALLED.encode() in line:
            process.terminate()  # runuser passes it on to pg_basebackup


def take(
    repo: Repository,
    *,
    host: str,
    port: int,
    user: str,
    os_user: str | None,
    pgdata: Path | None = None,
    clock: Clock = _now,
) -> BaseEntry:
    """Take a base backup of the cluster at `host` (a socket directory or an address) and
    `port` as database role `user` (with the programs of `pgdata`'s version when given); its
    catalog entry once it is durable."""
    started = clock()
    backup_id = repo.new_base_id(started)
    argv = postgres.as_owner(
        [
            postgres.program("pg_basebackup", pgdata), "--pgdata", "-", "--format", "tar",
            "--wal-method", "none", "--checkpoint", "fast", "--verbose", "--no-password",
            "--host", host, "--port", str(port), "--username", user,
            "--label", f"garrison {backup_id}",
        ],
        os_user,
    )  # fmt: skip
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "stdin": subprocess.DEVNULL}
    try:
        with child(argv, **pipes) as process, repo.sealing_base(backup_id) as out:
            if process.stdout is None:
                raise BackupError("pg_basebackup started without pipes")
            said: list[bytes] = []
            reader = threading.Thread(target=_watch, args=(process, said))
            reader.start()
            tap = TarTap(process.stdout)
            sealed = seal(tap, out, repo.public_key)  # type: ignore[arg-type]  # reads like a file
            reader.join()
            if process.wait() != 0:
                words = b"".join(said).decode(errors="replace").strip().splitlines()
                if any(_STALLED in line for line in words):
                    raise BackupError(
                        "the backup is complete but the WAL it needs is not being archived",
                        hint="fix archive_command (PostgreSQL's log says why it fails), then "
                        "take the backup again; garrison db check shows the archiver",
                    )
                raise BackupError(
                    "pg_basebackup failed: " + (" / ".join(words[-3:]) or "no reason given"),
                    hint="check --host, --port and --username, and that archiving works "
                    "(garrison db check)",
                )
    except BaseException:
        repo.delete_base(backup_id)  # nothing of it counted
        raise
    label, manifest = tap.text("backup_label"), tap.text("backup_manifest")
    start, on, end = _START.search(label), _TIMELINE.search(label), _END.search(manifest)
    if start is None or on is None or end is None:
        repo.delete_base(backup_id)
        raise BackupError(
            "the backup's tar holds no backup_label or backup_manifest saying where it starts "
            "and ends"
        )
    timeline = int(on[1])
    entry = BaseEntry(
        id=backup_id,
        started_at=iso(started),
        finished_at=iso(clock()),
        timeline=timeline,
        start_lsn=start[1],
        stop_lsn=end[1],
        start_wal=wal.segment_of(timeline, wal.parse_lsn(start[1])),
        size=sealed.size,
        sha256=sealed.sha256,
        plain_size=sealed.plain_size,
        plain_sha256=sealed.plain_sha256,
    )
    repo.put_base(entry)
    return entry
