"""The backup repository: sealed WAL files and base backups, with a catalog.

Layout (keys inside a directory or a bucket prefix, `garrison.backup.storage`)::

    garrison-repo.json        what the repository is (format, the key's fingerprint)
    backup-key.asc            the public key everything is encrypted to
    wal/TTTTTTTT/NAME.zst.gpg.json    a WAL file's catalog entry (sizes, SHA-256 of both forms,
                                      the object it is sealed in)
    wal/TTTTTTTT/NAME.RANDOM.zst.gpg  that object: the WAL file of timeline TTTTTTTT, sealed
    base/ID/data.tar.zst.gpg          a base backup (pg_basebackup's tar), sealed
    base/ID/backup.json               its catalog entry (times, LSNs, checksums)

Every file is published whole (`Storage.writer`); the catalog entry is written after the file
it describes, so a file counts only once its entry exists. A crash leaves at worst a temporary
file (ignored, and swept by `expire`) or a sealed file without an entry (written again by the
next attempt).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

import msgspec

from garrison.backup import wal
from garrison.backup.seal import BackupError, Sealed, key_facts, seal
from garrison.backup.storage import LocalStorage, Storage, open_storage
from garrison.core.errors import NotFoundError, UsageError

FORMAT: Final = 1
REPO_FILE: Final = "garrison-repo.json"
KEY_FILE: Final = "backup-key.asc"
SEALED: Final = ".zst.gpg"
ENTRY: Final = ".json"
BASE_DATA: Final = "data.tar.zst.gpg"
BASE_ENTRY: Final = "backup.json"


class RepoInfo(msgspec.Struct):
    format: int
    fingerprint: str
    created: str


class WalEntry(msgspec.Struct, frozen=True):
    """A WAL file in the repository, sealed in the object `object`."""

    name: str
    archived_at: str  # ISO 8601 UTC
    size: int
    sha256: str
    plain_size: int
    plain_sha256: str
    object: str  # the sealed file's key: a name of its own, never shared by two writers


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


def wal_key(name: str) -> str:
    """Where the catalog entry of the WAL file `name` is kept (its sealed object is named in
    it: each seal writes an object of its own, so that two writers of one WAL file, the
    streamer and archive_command, never mix one's data with the other's entry)."""
    return f"wal/{name[:8]}/{wal.check_name(name)}{SEALED}{ENTRY}"


def base_key(backup_id: str, what: str = BASE_DATA) -> str:
    """Where a base backup's data (or its entry) is kept."""
    return f"base/{backup_id}/{what}"


class Repository:
    """A backup repository in a directory, or in an S3-compatible bucket (``s3://B/P``)."""

    def __init__(
        self, location: str | Path, storage: Storage | None = None, *, fingerprint: str = ""
    ) -> None:
        """Open the repository at `location`; with `fingerprint` (pinned outside the
        repository, as ``configure`` does in archive_command), nothing is sealed unless the
        repository's key is that key."""
        self.location = str(location)
        self.pinned = fingerprint.replace(" ", "").upper()
        self.storage: Storage = storage or open_storage(location)
        data = self.storage.get(REPO_FILE)
        if data is None:
            raise NotFoundError(
                f"{self.storage.describe()} is not a Garrison backup repository (no {REPO_FILE})",
                hint="create one with: garrison db init-repo --repo DIR --public-key KEYFILE",
            )
        self.info = msgspec.json.decode(data, type=RepoInfo)
        self._key_file: Path | None = None
        self._key_checked = False

    @classmethod
    def init(cls, location: str | Path, public_key: Path, now: dt.datetime) -> Repository:
        """Make `location` a repository whose backups are encrypted to `public_key`."""
        fingerprint, secret = key_facts(public_key)
        if secret:
            raise UsageError(
                f"{public_key} holds a secret key: the repository takes the public key only",
                hint="export it with: gpg --armor --export KEYID > backup-public.asc; keep the "
                "secret key off the database host",
            )
        storage = open_storage(location)
        known = storage.get(REPO_FILE)
        if known is not None:
            existing = msgspec.json.decode(known, type=RepoInfo)
            if existing.fingerprint != fingerprint:
                raise UsageError(
                    f"{storage.describe()} is already a repository for key {existing.fingerprint}",
                    hint="use another location for another key",
                )
            return cls(location, storage)
        if isinstance(storage, LocalStorage):
            storage.root.mkdir(parents=True, exist_ok=True)
        storage.put(KEY_FILE, public_key.read_bytes())
        storage.put(REPO_FILE, _encode(RepoInfo(FORMAT, fingerprint, iso(now))))
        return cls(location, storage)

    @property
    def public_key(self) -> Path:
        """A local file holding the repository's public key (gpg reads it from a file), once
        it is known to be the key the repository was made with (and the pinned one)."""
        path = self._key_path()
        if not self._key_checked:
            found, _ = key_facts(path)
            for expected, what in ((self.info.fingerprint, "made with"), (self.pinned, "pinned")):
                if expected and found != expected:
                    raise BackupError(
                        f"the public key in {self.storage.describe()} is {found}, not the key "
                        f"{expected} it was {what}: nothing is encrypted to it",
                        hint="someone may have replaced it; restore backup-key.asc from your "
                        "copy of the backup public key",
                    )
            self._key_checked = True
        return path

    def _key_path(self) -> Path:
        if isinstance(self.storage, LocalStorage):
            return self.storage.root / KEY_FILE
        if self._key_file is None:
            folder = Path(tempfile.mkdtemp(prefix="garrison-key-"))  # 0700, ours alone
            weakref.finalize(self, shutil.rmtree, folder, True)
            key = self.storage.get(KEY_FILE)
            if key is None:
                raise BackupError(f"{self.storage.describe()} has lost its {KEY_FILE}")
            self._key_file = folder / KEY_FILE
            self._key_file.write_bytes(key)
        return self._key_file

    # --- writing -------------------------------------------------------------------------

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
        before = self.wal_entry(name)
        key = f"wal/{name[:8]}/{name}.{secrets.token_hex(6)}{SEALED}"
        with source.open("rb") as plain, self.storage.writer(key) as out:
            expected = os.fstat(plain.fileno()).st_size
            sealed = seal(plain, out, self.public_key)
            if sealed.plain_size != expected:
                read = sealed.plain_size
                raise BackupError(f"{source} changed while sealed: {read} of {expected} bytes read")
        entry = WalEntry(name, iso(now), *_sizes(sealed), object=key)
        self.storage.put(wal_key(name), _encode(entry))
        if before is not None and before.object != key:
            self.storage.delete(before.object)  # the part streamed before, now replaced
        return entry

    def new_base_id(self, now: dt.datetime) -> str:
        """A fresh id for a base backup started at `now`."""
        stem = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        candidate, n = stem, 1
        while self.storage.keys(f"base/{candidate}/"):
            n += 1
            candidate = f"{stem}-{n}"
        return candidate

    @contextmanager
    def sealing_base(self, backup_id: str) -> Iterator[IO[bytes]]:
        """Where a base backup's sealed tar is written (complete once `put_base` is called)."""
        with self.storage.writer(base_key(backup_id)) as out:
            yield out

    def put_base(self, entry: BaseEntry) -> None:
        """Record a base backup whose data is written: from now on it counts."""
        self.storage.put(base_key(entry.id, BASE_ENTRY), _encode(entry))

    def delete_base(self, backup_id: str) -> None:
        """Remove a base backup: its entry first, so that it stops counting at once."""
        self.storage.delete(base_key(backup_id, BASE_ENTRY))
        self.storage.delete(base_key(backup_id))

    def delete_wal(self, name: str) -> None:
        """Remove a WAL file: its entry first."""
        entry = self.wal_entry(name)
        self.storage.delete(wal_key(name))
        if entry is not None:
            self.storage.delete(entry.object)

    # --- reading -------------------------------------------------------------------------

    def open_sealed(self, key: str) -> IO[bytes]:
        """A sealed file, for reading (a context manager)."""
        opened: IO[bytes] = self.storage.reader(key)
        return opened

    def wal_entry(self, name: str) -> WalEntry | None:
        """The entry of the WAL file `name`, or None when it is not (completely) archived."""
        data = self.storage.get(wal_key(name))
        return None if data is None else msgspec.json.decode(data, type=WalEntry)

    def wal_entries(self) -> list[WalEntry]:
        """Every archived WAL file, in name order."""
        found = [
            msgspec.json.decode(data, type=WalEntry)
            for key in self.storage.keys("wal/")
            if key.endswith(SEALED + ENTRY) and (data := self.storage.get(key)) is not None
        ]
        return sorted(found, key=lambda e: e.name)

    def bases(self) -> list[BaseEntry]:
        """Every complete base backup, oldest first."""
        found = [
            msgspec.json.decode(data, type=BaseEntry)
            for key in self.storage.keys("base/")
            if key.endswith("/" + BASE_ENTRY) and (data := self.storage.get(key)) is not None
        ]
        return sorted(found, key=lambda b: (b.finished_at, b.id))

    def loose(self) -> list[str]:
        """Keys of interrupted writes: temporary files, and sealed files no entry names (a
        write cut short, or the loser of two writers of one WAL file)."""
        keys = set(self.storage.keys(""))
        named = {e.object for e in self.wal_entries()}
        loose = list(self.storage.leftovers())
        for key in keys:
            if (key.startswith("wal/") and key.endswith(SEALED) and key not in named) or (
                key.endswith("/" + BASE_DATA)
                and key.removesuffix(BASE_DATA) + BASE_ENTRY not in keys
            ):
                loose.append(key)
        return sorted(loose)


def _sizes(sealed: Sealed) -> tuple[int, str, int, str]:
    return sealed.size, sealed.sha256, sealed.plain_size, sealed.plain_sha256


def file_sha256(path: Path) -> str:
    """SHA-256 of a file."""
    with path.open("rb") as fh:
        return stream_sha256(fh)


def stream_sha256(source: IO[bytes]) -> str:
    """SHA-256 of a stream read to its end."""
    digest = hashlib.sha256()
    while chunk := source.read(1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()
