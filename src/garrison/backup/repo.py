"""The backup repository: sealed WAL files and base backups in a directory, with a catalog.

Layout::

    REPO/garrison-repo.json        what the repository is (format, the key's fingerprint)
    REPO/backup-key.asc            the public key everything is encrypted to
    REPO/wal/TTTTTTTT/NAME.zst.gpg         a WAL file of timeline TTTTTTTT, sealed
    REPO/wal/TTTTTTTT/NAME.zst.gpg.json    its catalog entry (sizes, SHA-256 of both forms)
    REPO/base/ID/data.tar.zst.gpg          a base backup (pg_basebackup's tar), sealed
    REPO/base/ID/backup.json               its catalog entry (times, LSNs, checksums)

Every file is written under a temporary name, fsynced, renamed and its directory fsynced; the
catalog entry is written the same way after the file it describes, so a file counts only once
its entry exists. A crash leaves at worst a temporary file (ignored, and swept by `check`) or
a sealed file without an entry (written again by the next attempt).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

import msgspec

from garrison.backup import wal
from garrison.backup.seal import BackupError, Sealed, key_facts, seal
from garrison.core.errors import NotFoundError, UsageError
from garrison.core.files import fsync_dir, replace_private

FORMAT: Final = 1
REPO_FILE: Final = "garrison-repo.json"
KEY_FILE: Final = "backup-key.asc"
SEALED: Final = ".zst.gpg"
ENTRY: Final = ".json"
BASE_DATA: Final = "data.tar.zst.gpg"
BASE_ENTRY: Final = "backup.json"
TEMPORARY_PREFIX: Final = ".tmp-"


class RepoInfo(msgspec.Struct):
    format: int
    fingerprint: str
    created: str


class WalEntry(msgspec.Struct, frozen=True):
    """A WAL file in the repository."""

    name: str
    archived_at: str  # ISO 8601 UTC
    size: int
    sha256: str
    plain_size: int
    plain_sha256: str


class BaseEntry(msgspec.Struct, frozen=True):
    """A base backup in the repository: consistent from `stop_lsn`, reached by `finished_at`."""

    id: str
    started_at: str
    finished_at: str
    timeline: int
    start_lsn: str
    stop_lsn: str
    start_wal: str
    size: int
    sha256: str
    plain_size: int
    plain_sha256: str


def iso(moment: dt.datetime) -> str:
    """ISO 8601 UTC with microseconds and ``Z``."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> dt.datetime:
    """An ISO 8601 time (``Z`` or an offset; none is UTC) as an aware datetime."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{text!r} is not a time", hint="write it like 2026-11-29T12:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


_encode = msgspec.json.Encoder().encode


class Repository:
    """A backup repository on a local or mounted directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        info = root / REPO_FILE
        if not info.is_file():
            raise NotFoundError(
                f"{root} is not a Garrison backup repository (no {REPO_FILE})",
                hint="create one with: garrison db init-repo --repo DIR --public-key KEYFILE",
            )
        self.info = msgspec.json.decode(info.read_bytes(), type=RepoInfo)

    @classmethod
    def init(cls, root: Path, public_key: Path, now: dt.datetime) -> Repository:
        """Make `root` a repository whose backups are encrypted to `public_key`."""
        fingerprint, secret = key_facts(public_key)
        if secret:
            raise UsageError(
                f"{public_key} holds a secret key: the repository takes the public key only",
                hint="export it with: gpg --armor --export KEYID > backup-public.asc; keep the "
                "secret key off the database host",
            )
        if (root / REPO_FILE).exists():
            existing = cls(root)
            if existing.info.fingerprint != fingerprint:
                raise UsageError(
                    f"{root} is already a repository for key {existing.info.fingerprint}",
                    hint="use another directory for another key",
                )
            return existing
        root.mkdir(parents=True, exist_ok=True)
        replace_private(root / KEY_FILE, public_key.read_bytes())
        os.chmod(root / KEY_FILE, 0o644)
        info = RepoInfo(format=FORMAT, fingerprint=fingerprint, created=iso(now))
        replace_private(root / REPO_FILE, _encode(info))
        os.chmod(root / REPO_FILE, 0o644)
        return cls(root)

    @property
    def public_key(self) -> Path:
        return self.root / KEY_FILE

    # --- writing -------------------------------------------------------------------------

    @contextmanager
    def _sealing(self, final: Path) -> Iterator[IO[bytes]]:
        """A temporary file beside `final` that becomes `final` when the block ends well."""
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f"{TEMPORARY_PREFIX}{final.name}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, final)
            fsync_dir(final.parent)
        finally:
            temporary.unlink(missing_ok=True)

    def wal_path(self, name: str) -> Path:
        """Where the sealed WAL file `name` lives."""
        return self.root / "wal" / name[:8] / f"{wal.check_name(name)}{SEALED}"

    def put_wal(self, name: str, source: Path, now: dt.datetime) -> tuple[WalEntry, bool]:
        """Archive the WAL file `source` as `name`; (its entry, whether it was written now).
        The same content archived again is accepted as it is; other content is refused."""
        known = self.wal_entry(name)
        if known is not None:
            if file_sha256(source) == known.plain_sha256:
                return known, False
            raise BackupError(
                f"{name} is already archived with other contents",
                hint="two clusters may be archiving into one repository; give each its own",
            )
        entry = self._seal_wal(name, source, now)
        if wal.SEGMENT_RE.match(name) and self.wal_entry(name + wal.PARTIAL) is not None:
            self.delete_wal(name + wal.PARTIAL)  # the streamed part is superseded
        return entry, True

    def put_partial(self, segment: str, source: Path, now: dt.datetime) -> WalEntry:
        """Seal the segment being streamed, replacing the part sealed before (the streamer's
        recovery point between two whole segments)."""
        if not wal.SEGMENT_RE.match(segment):
            raise BackupError(f"{segment!r} is not a WAL segment name")
        return self._seal_wal(segment + wal.PARTIAL, source, now)

    def _seal_wal(self, name: str, source: Path, now: dt.datetime) -> WalEntry:
        final = self.wal_path(name)
        with source.open("rb") as plain, self._sealing(final) as out:
            sealed = seal(plain, out, self.public_key)
        entry = WalEntry(name, iso(now), *_sizes(sealed))
        self._write_entry(final.with_name(final.name + ENTRY), _encode(entry))
        return entry

    def _write_entry(self, path: Path, data: bytes) -> None:
        replace_private(path, data)
        os.chmod(path, 0o644)

    def base_dir(self, backup_id: str) -> Path:
        return self.root / "base" / backup_id

    def new_base_id(self, now: dt.datetime) -> str:
        """A fresh id for a base backup started at `now`."""
        stem = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        candidate, n = stem, 1
        while self.base_dir(candidate).exists():
            n += 1
            candidate = f"{stem}-{n}"
        return candidate

    @contextmanager
    def sealing_base(self, backup_id: str) -> Iterator[IO[bytes]]:
        """Where a base backup's sealed tar is written (complete once `put_base` is called)."""
        with self._sealing(self.base_dir(backup_id) / BASE_DATA) as out:
            yield out

    def put_base(self, entry: BaseEntry) -> None:
        """Record a base backup whose data is written: from now on it counts."""
        self._write_entry(self.base_dir(entry.id) / BASE_ENTRY, _encode(entry))

    def delete_base(self, backup_id: str) -> None:
        """Remove a base backup: its entry first, so that it stops counting at once."""
        folder = self.base_dir(backup_id)
        (folder / BASE_ENTRY).unlink(missing_ok=True)
        fsync_dir(folder)
        shutil.rmtree(folder)

    def delete_wal(self, name: str) -> None:
        """Remove a WAL file: its entry first."""
        final = self.wal_path(name)
        final.with_name(final.name + ENTRY).unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        fsync_dir(final.parent)

    # --- reading -------------------------------------------------------------------------

    def wal_entry(self, name: str) -> WalEntry | None:
        """The entry of the WAL file `name`, or None when it is not (completely) archived."""
        path = self.wal_path(name)
        try:
            data = path.with_name(path.name + ENTRY).read_bytes()
        except FileNotFoundError:
            return None
        return msgspec.json.decode(data, type=WalEntry)

    def wal_entries(self) -> list[WalEntry]:
        """Every archived WAL file, in name order."""
        found = []
        for path in sorted((self.root / "wal").glob(f"*/*{SEALED}{ENTRY}")):
            found.append(msgspec.json.decode(path.read_bytes(), type=WalEntry))
        return sorted(found, key=lambda e: e.name)

    def bases(self) -> list[BaseEntry]:
        """Every complete base backup, oldest first."""
        found = [
            msgspec.json.decode(path.read_bytes(), type=BaseEntry)
            for path in (self.root / "base").glob(f"*/{BASE_ENTRY}")
        ]
        return sorted(found, key=lambda b: (b.finished_at, b.id))

    def loose_files(self) -> list[Path]:
        """Temporary files of interrupted writes, and sealed files without an entry."""
        loose = [p for p in self.root.rglob(f"{TEMPORARY_PREFIX}*") if p.is_file()]
        for path in (self.root / "wal").glob(f"*/*{SEALED}"):
            if not path.with_name(path.name + ENTRY).exists():
                loose.append(path)
        for folder in (self.root / "base").glob("*"):
            if folder.is_dir() and not (folder / BASE_ENTRY).exists():
                loose.append(folder)
        return sorted(loose)


def _sizes(sealed: Sealed) -> tuple[int, str, int, str]:
    return sealed.size, sealed.sha256, sealed.plain_size, sealed.plain_sha256


def file_sha256(path: Path) -> str:
    """SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
