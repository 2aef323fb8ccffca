"""Streams of durable records: append (fsync before ack), recover, seal, checkpoint, expire, read.

Several processes may write one stream (on the embedded default the server and the CLI both
write ``audit``): every change happens under an exclusive ``flock`` of the stream's lock file,
after catching up with what other writers appended or sealed.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from garrison.core.errors import StoreCorruptError, StoreError, UsageError
from garrison.core.files import fsync_dir
from garrison.logstore import digests, frames, merkle, segment
from garrison.logstore.digests import Checkpoint, Digest, SegmentRef, SignedDigest, Signer
from garrison.logstore.frames import Frame
from garrison.logstore.segment import Sealed

log = logging.getLogger("garrison.logstore")

STREAM_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
LOG_HEADER = struct.Struct("<8sq")
LOG_MAGIC = b"GRLOG01\n"
_TIME_MIN, _TIME_MAX = -(2**63) + 1, 2**63 - 1
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class StoreConfig:
    """Rolling, checkpoint and retention policy."""

    segment_bytes: int = 64 * 1024 * 1024
    segment_seconds: int = 3600
    checkpoint_seconds: int = 3600
    retention_days: Mapping[str, int] = field(default_factory=lambda: {"audit": 400})
    default_retention_days: int = 90

    def retention_for(self, stream: str) -> int:
        """Days a stream's records are kept."""
        return self.retention_days.get(stream, self.default_retention_days)


@dataclass(frozen=True)
class Record:
    """One stored record."""

    stream: str
    offset: int
    time_ns: int
    payload: bytes

    def event(self) -> dict[str, Any]:
        """The record's JSON payload."""
        value = msgspec.json.decode(self.payload)
        return value if isinstance(value, dict) else {"value": value}


@dataclass(frozen=True)
class RecoveryNote:
    """Something repaired when a stream was opened (reported, never silent)."""

    stream: str
    file: str
    reason: str


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def event_time_ns(event: Mapping[str, Any], default: int) -> int:
    """The event's ``time`` (ISO 8601) in ns, or `default` if it has none."""
    value = event.get("time")
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return default
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        # Integer arithmetic: float timestamps put 1-2% of microsecond times 1 µs early.
        return (parsed - _EPOCH) // _MICROSECOND * 1000
    return default


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Stream:
    """One stream's directory: sealed segments, the active log, digests."""

    def __init__(
        self,
        root: Path,
        name: str,
        config: StoreConfig,
        signer: Signer | None,
        on_digest: Callable[[SignedDigest], None] | None = None,
    ) -> None:
        self.name = name
        self.on_digest = on_digest
        self.dir = root / name
        self.digest_dir = self.dir / "digests"
        self.config = config
        self.signer = signer
        self.notes: list[RecoveryNote] = []
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._mutex = threading.RLock()
        self._depth = 0
        self._fd = -1
        self._firsts: list[int] = []
        self._sealed: list[Path] = []
        try:
            with self._locked():
                self._load()
        except BaseException:
            self.close()
            raise

    # --- locking and state ----------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across threads (re-entrant) and processes (flock, taken once per depth)."""
        with self._mutex:
            outermost = self._depth == 0
            if outermost:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if outermost:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release file descriptors."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        os.close(self._lock_fd)

    def _note(self, file: str, reason: str) -> None:
        note = RecoveryNote(self.name, file, reason)
        self.notes.append(note)
        log.warning("log store %s/%s: %s", self.name, file, reason)

    def _load(self) -> None:
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink()
            self._note(tmp.name, "removed an unfinished seal left by a crash")
        self._sealed = sorted(self.dir.glob("*.seg"))
        self._firsts = [segment.first_of(p) for p in self._sealed]
        sealed_firsts = set(self._firsts)
        logs = sorted(self.dir.glob("*.log"))
        for path in logs:
            first = segment.first_of(path)
            if first in sealed_firsts:
                sealed = Sealed.open(self._sealed[self._firsts.index(first)])
                held = len(frames.index(path.read_bytes(), LOG_HEADER.size)[0])
                if held > sealed.footer.count:
                    raise StoreCorruptError(
                        f"stream {self.name}: {path.name} holds {held} records but its sealed "
                        f"copy only {sealed.footer.count}",
                        hint="keep both files and run `garrison store verify`",
                    )
                path.unlink()
                self._note(path.name, "removed an active log already sealed before a crash")
        logs = [p for p in logs if p.exists()]
        if len(logs) > 1:
            raise StoreCorruptError(
                f"stream {self.name} has {len(logs)} active logs: "
                + ", ".join(p.name for p in logs),
                hint="run `garrison store verify` and keep a copy before repairing by hand",
            )
        next_offset = Sealed.open(self._sealed[-1]).last + 1 if self._sealed else 0
        # Retention may have deleted the newest sealed segments (or all of them): the digests
        # still say how far sealing went, so offsets continue instead of restarting.
        latest = self.latest_digest()
        if latest is not None:
            next_offset = max(next_offset, latest.digest.sealed_through + 1)
        if logs:
            self._open_active(logs[0], expected_first=next_offset)
        else:
            self._create_active(next_offset)

    def _create_active(self, first: int) -> None:
        path = self.dir / segment.name_for(first, ".log")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        _write_all(fd, LOG_HEADER.pack(LOG_MAGIC, time.time_ns()))
        os.fsync(fd)
        fsync_dir(self.dir)
        self._set_active(path, fd, first, created_ns=time.time_ns(), count=0)

    def _set_active(self, path: Path, fd: int, first: int, *, created_ns: int, count: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self.active_path = path
        self.active_first = first
        self.active_created_ns = created_ns
        self.active_count = count
        st = os.fstat(fd)
        self._active_inode, self._active_size = st.st_ino, st.st_size

    def _open_active(self, path: Path, *, expected_first: int) -> None:
        raw = path.read_bytes()
        first = segment.first_of(path)
        if first != expected_first:
            raise StoreCorruptError(
                f"stream {self.name}: active log {path.name} starts at {first}, "
                f"but the sealed segments end before {expected_first}",
                hint="a segment was deleted or added by hand: run `garrison store verify`",
            )
        if len(raw) < LOG_HEADER.size:
            created = time.time_ns()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.ftruncate(fd, 0)
            _write_all(fd, LOG_HEADER.pack(LOG_MAGIC, created))
            os.fsync(fd)
            self._note(path.name, "rewrote a log header cut short by a crash")
            self._set_active(path, fd, first, created_ns=created, count=0)
            return
        magic, created = LOG_HEADER.unpack_from(raw)
        if magic != LOG_MAGIC:
            raise StoreCorruptError(f"stream {self.name}: {path.name} is not a Garrison log")
        found, damage = frames.scan(raw, LOG_HEADER.size)
        end = found[-1].end if found else LOG_HEADER.size
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        if damage is not None:
            if not damage.torn:
                os.close(fd)
                raise StoreCorruptError(
                    f"stream {self.name}: {path.name} is damaged at byte {damage.position} "
                    f"({damage.reason}), before its end",
                    hint="this is not an interrupted write: run `garrison store verify`",
                )
            os.ftruncate(fd, end)
            os.fsync(fd)
            self._note(
                path.name,
                f"cut a torn tail of {len(raw) - end} bytes at byte {end} ({damage.reason}); "
                "no acknowledged record is lost",
            )
        try:
            self._check_offsets(found, first, path.name)
        except StoreCorruptError:
            os.close(fd)
            raise
        self._set_active(path, fd, first, created_ns=created, count=len(found))
        self._active_index()  # refuse to go on writing over records altered since signed

    def _check_offsets(self, found: Sequence[Frame], first: int, file: str) -> None:
        for i, frame in enumerate(found):
            if frame.offset != first + i:
                raise StoreCorruptError(
                    f"stream {self.name}: {file} holds offset {frame.offset} where "
                    f"{first + i} belongs",
                    hint="records were reordered, inserted or deleted: run `garrison store verify`",
                )

    def _catch_up(self) -> None:
        """Follow what other processes appended or sealed since we last looked."""
        try:
            st = os.stat(self.active_path)
        except FileNotFoundError:
            self._load()
            return
        if st.st_ino != self._active_inode or st.st_size < self._active_size:
            self._load()
        elif st.st_size != self._active_size:
            with self.active_path.open("rb") as fh:
                fh.seek(self._active_size)
                tail = fh.read()
            found, damage = frames.scan(tail)
            if damage is not None:
                self._load()  # another writer crashed mid-write: recover as on open
                return
            self._check_offsets(found, self.next_offset, self.active_path.name)
            self.active_count += len(found)
            self._active_size = st.st_size

    @property
    def next_offset(self) -> int:
        """Offset the next appended record gets."""
        return self.active_first + self.active_count

    # --- writing ----------------------------------------------------------------------------

    def append(self, items: Sequence[tuple[int, bytes]]) -> int:
        """Append (time_ns, payload) records durably; returns the first offset given."""
        if not items:
            return self.next_offset
        for i, (time_ns, payload) in enumerate(items):
            if len(payload) > frames.MAX_PAYLOAD:
                raise UsageError(
                    f"record {i} is {len(payload)} bytes; the store takes at most "
                    f"{frames.MAX_PAYLOAD} bytes per record",
                    hint="split the event or keep large blobs outside the log store",
                )
            if not _TIME_MIN <= time_ns <= _TIME_MAX:
                raise UsageError(f"record {i} has a time outside the years 1678-2262")
        with self._locked():
            self._catch_up()
            first = self.next_offset
            data = frames.encode_many(first, list(items))
            try:
                _write_all(self._fd, data)
                os.fdatasync(self._fd)
            except OSError as exc:
                # Cut whatever part of the batch reached the file: it was never acknowledged.
                os.ftruncate(self._fd, self._active_size)
                raise StoreError(
                    f"cannot write to stream {self.name}: {exc.strerror}",
                    hint="check free space and permissions of the data dir; nothing was stored",
                ) from exc
            self.active_count += len(items)
            self._active_size += len(data)
            if self._due_for_seal(time.time_ns()):
                self._seal_after_ack()
        return first

    def _seal_after_ack(self) -> None:
        """Seal after an acknowledged append: a failure is reported, never un-acknowledges."""
        try:
            self._seal()
        except (OSError, StoreError) as exc:
            log.error("log store %s: sealing failed (%s); will retry", self.name, exc)
            self._load()

    def _due_for_seal(self, now_ns: int) -> bool:
        if self.active_count == 0:
            return False
        age = (now_ns - self.active_created_ns) / 1e9
        return self._active_size >= self.config.segment_bytes or age >= self.config.segment_seconds

    def _signer(self) -> Signer:
        if self.signer is None:
            raise StoreError(f"stream {self.name} is open read-only (no signing key)")
        return self.signer

    def _active_index(self) -> tuple[frames.Index, bytes]:
        """The acknowledged records of the active log, refusing to sign anything altered."""
        raw = self.active_path.read_bytes()[: self._active_size]
        idx, _ = frames.index(raw, LOG_HEADER.size)
        if len(idx) < self.active_count or idx.offsets[: self.active_count] != list(
            range(self.active_first, self.active_first + self.active_count)
        ):
            raise StoreCorruptError(
                f"stream {self.name}: {self.active_path.name} no longer holds the "
                f"{self.active_count} records acknowledged",
                hint="run `garrison store verify`; nothing was signed",
            )
        idx = idx.head(self.active_count)
        cp = self._last_checkpoint()
        if cp is not None:
            signed = idx.head(cp.count) if cp.count <= len(idx) else None
            if (
                signed is None
                or merkle.root(frames.leaf_hashes(raw, signed)).hex() != cp.merkle_root
            ):
                raise StoreCorruptError(
                    f"stream {self.name}: records of {self.active_path.name} signed at a "
                    "checkpoint have changed",
                    hint="run `garrison store verify`; nothing was signed",
                )
        return idx, raw

    def _last_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint of the current active log, if one was signed."""
        for path in reversed(digests.list_files(self.digest_dir)):
            d = digests.read(path).digest
            if d.checkpoint is not None:
                return d.checkpoint if d.checkpoint.first == self.active_first else None
            if d.segments:
                return None
        return None

    def _seal(self) -> None:
        idx, raw = self._active_index()
        if not idx:
            return
        path = self.dir / segment.name_for(self.active_first, ".seg")
        footer, sha = segment.write(path, self.name, raw, idx)
        ref = SegmentRef(
            path.name,
            footer.first,
            footer.count,
            footer.min_time_ns,
            footer.max_time_ns,
            sha,
            footer.merkle_root,
        )
        self._sealed.append(path)
        self._firsts.append(footer.first)
        self._write_digest([*self._uncovered(exclude=path.name), ref], checkpoint=None)
        old = self.active_path
        self._create_active(footer.first + footer.count)
        old.unlink()
        fsync_dir(self.dir)

    def _uncovered(self, exclude: str = "") -> list[SegmentRef]:
        """Sealed segments that no digest names yet (a crash between seal and digest)."""
        latest = self.latest_digest()
        through = latest.digest.sealed_through if latest else -1
        return [
            _ref_for(path)
            for path, first in zip(self._sealed, self._firsts, strict=True)
            if first > through and path.name != exclude
        ]

    def latest_digest(self) -> SignedDigest | None:
        """The newest digest of this stream, if any."""
        files = digests.list_files(self.digest_dir)
        return digests.read(files[-1]) if files else None

    def _write_digest(
        self,
        segments: list[SegmentRef],
        *,
        checkpoint: Checkpoint | None,
        expired: list[SegmentRef] | None = None,
    ) -> SignedDigest:
        signer = self._signer()
        latest = self.latest_digest()
        through = max(
            [latest.digest.sealed_through if latest else -1]
            + [ref.first + ref.count - 1 for ref in segments]
        )
        digest = Digest(
            version=1,
            stream=self.name,
            seq=latest.digest.seq + 1 if latest else 0,
            time=digests.now_iso(),
            key_id=digests.key_id(signer.public),
            previous_signature=latest.signature if latest else "",
            sealed_through=through,
            segments=segments,
            expired=expired or [],
            checkpoint=checkpoint,
        )
        signed = signer.sign(digest)
        digests.write(self.digest_dir, signed)
        if self.on_digest is not None:
            try:
                self.on_digest(signed)
            except OSError as exc:  # the digest is durable here; a copy elsewhere can lag
                log.error(
                    "log store %s: exporting digest %d failed: %s", self.name, digest.seq, exc
                )
        return signed

    def checkpoint(self) -> SignedDigest | None:
        """Sign the active segment's records so far (and any uncovered segment); None if idle."""
        with self._locked():
            self._catch_up()
            latest = self.latest_digest()
            uncovered = self._uncovered()
            previous = latest.digest.checkpoint if latest else None
            unchanged = self.active_count == 0 or (
                previous is not None
                and previous.file == self.active_path.name
                and previous.count == self.active_count
            )
            if not uncovered and unchanged:
                return None
            idx, raw = self._active_index()
            cp = Checkpoint(
                self.active_path.name,
                self.active_first,
                len(idx),
                merkle.root(frames.leaf_hashes(raw, idx)).hex(),
            )
            return self._write_digest(uncovered, checkpoint=cp)

    def seal(self) -> None:
        """Seal the active segment now (if it holds records)."""
        with self._locked():
            self._catch_up()
            self._seal()

    def maintain(self, now_ns: int | None = None) -> list[str]:
        """Seal when due, checkpoint when the last digest is older than the interval, expire.

        Returns the names of segments deleted by retention.
        """
        now_ns = now_ns or time.time_ns()
        with self._locked():
            self._catch_up()
            if self._due_for_seal(now_ns):
                self._seal()
            expired = self.expire(now_ns)
        latest = self.latest_digest()
        age = (now_ns - _digest_time_ns(latest)) / 1e9 if latest else float("inf")
        if age >= self.config.checkpoint_seconds:
            self.checkpoint()
        return expired

    def expire(self, now_ns: int | None = None) -> list[str]:
        """Delete sealed segments past retention, recording them in a signed digest first."""
        now_ns = now_ns or time.time_ns()
        cutoff = now_ns - self.config.retention_for(self.name) * 86400 * 10**9
        with self._locked():
            self._catch_up()
            # Another process may have expired segments since we listed them: list afresh.
            self._sealed = self.sealed_segments()
            self._firsts = [segment.first_of(p) for p in self._sealed]
            due = [p for p in self._sealed if Sealed.open(p).footer.max_time_ns < cutoff]
            if not due:
                return []
            self._write_digest(
                self._uncovered(), checkpoint=None, expired=[_ref_for(p) for p in due]
            )
            for path in due:
                path.unlink()
            fsync_dir(self.dir)
            self._sealed = [p for p in self._sealed if p not in due]
            self._firsts = [segment.first_of(p) for p in self._sealed]
            return [p.name for p in due]

    # --- reading ----------------------------------------------------------------------------

    def sealed_segments(self) -> list[Path]:
        """Sealed segment files, oldest first (refreshed from disk)."""
        return sorted(self.dir.glob("*.seg"))

    def read(self, offset: int, limit: int = 1000) -> list[Record]:
        """Up to `limit` records from `offset` on (oldest first)."""
        out: list[Record] = []
        for seg_path in self.sealed_segments():
            try:
                sealed = Sealed.open(seg_path)
            except segment.SegmentError:
                continue
            if sealed.last < offset:
                continue
            for bi in range(
                sealed.block_of(max(offset, sealed.footer.first)), len(sealed.footer.blocks)
            ):
                for off, t, payload in block_records(sealed, bi):
                    if off >= offset:
                        out.append(Record(self.name, off, t, payload))
                        if len(out) >= limit:
                            return out
        for frame in self.active_records():
            if frame.offset >= offset:
                out.append(Record(self.name, frame.offset, frame.time_ns, frame.payload))
                if len(out) >= limit:
                    break
        return out

    def active_records(self) -> list[Frame]:
        """Intact records of the active log as on disk now (a concurrent torn tail is ignored).

        The active log is the one that starts where the sealed segments end; an old log left
        beside it by a seal in progress, or a stray file, is not read.
        """
        sealed = self.sealed_segments()
        latest = self.latest_digest()
        try:
            expected = Sealed.open(sealed[-1]).last + 1 if sealed else 0
        except segment.SegmentError:
            expected = 0  # a damaged newest segment: fall back to what the digests say
        if latest is not None:
            expected = max(expected, latest.digest.sealed_through + 1)
        try:
            raw = (self.dir / segment.name_for(expected, ".log")).read_bytes()
        except FileNotFoundError:
            return []
        found, _ = frames.scan(raw, LOG_HEADER.size)
        return found


def block_records(sealed: Sealed, index: int) -> list[tuple[int, int, bytes]]:
    """A sealed block's records; damage is logged (never silent) and the rest skipped."""
    try:
        items, damage = frames.records(sealed.read_block(index))
    except segment.SegmentError as exc:
        log.warning("log store %s: %s; run `garrison store verify`", sealed.path, exc)
        return []
    if damage is not None:
        log.warning(
            "log store %s block %d damaged at byte %d (%s); run `garrison store verify`",
            sealed.path,
            index,
            damage.position,
            damage.reason,
        )
    return items


def _ref_for(path: Path) -> SegmentRef:
    footer = Sealed.open(path).footer
    return SegmentRef(
        path.name,
        footer.first,
        footer.count,
        footer.min_time_ns,
        footer.max_time_ns,
        segment.file_sha256(path),
        footer.merkle_root,
    )


def _digest_time_ns(signed: SignedDigest) -> int:
    return int(dt.datetime.fromisoformat(signed.digest.time).timestamp() * 1e9)


class Store:
    """All streams under one directory."""

    def __init__(
        self,
        root: Path,
        *,
        signer: Signer | None = None,
        config: StoreConfig | None = None,
        on_digest: Callable[[SignedDigest], None] | None = None,
    ) -> None:
        self.root = root
        self.signer = signer
        self.on_digest = on_digest
        self.config = config or StoreConfig()
        self.root.mkdir(parents=True, exist_ok=True)
        self._streams: dict[str, Stream] = {}
        self._lock = threading.Lock()

    def stream(self, name: str) -> Stream:
        """The stream `name`, opened (and recovered) on first use."""
        if not STREAM_RE.match(name):
            raise UsageError(
                f"invalid stream name {name!r}: use 1-32 lower-case letters, digits, '-' or '_'"
            )
        with self._lock:
            if name not in self._streams:
                self._streams[name] = Stream(
                    self.root, name, self.config, self.signer, self.on_digest
                )
            return self._streams[name]

    def stream_names(self) -> list[str]:
        """Streams that exist on disk."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and STREAM_RE.match(p.name))

    def append(self, stream: str, events: Sequence[Mapping[str, Any]]) -> list[int]:
        """Append JSON events durably; returns their offsets."""
        now = time.time_ns()
        items = [(event_time_ns(e, now), _encode(e)) for e in events]
        first = self.stream(stream).append(items)
        return list(range(first, first + len(items)))

    def maintain(self, now_ns: int | None = None) -> dict[str, list[str]]:
        """Seal, checkpoint and expire every stream; returns segments expired per stream."""
        expired = {name: self.stream(name).maintain(now_ns) for name in self.stream_names()}
        return {name: files for name, files in expired.items() if files}

    def close(self) -> None:
        """Close every open stream."""
        with self._lock:
            for stream in self._streams.values():
                stream.close()
            self._streams.clear()

    # --- consumers --------------------------------------------------------------------------

    def _offset_path(self, consumer: str, stream: str) -> Path:
        if not STREAM_RE.match(consumer):
            raise UsageError(f"invalid consumer name {consumer!r}")
        return self.root / ".consumers" / f"{consumer}--{stream}"

    def committed(self, consumer: str, stream: str) -> int:
        """The next offset `consumer` should read from `stream` (0 if it never committed)."""
        try:
            return int(self._offset_path(consumer, stream).read_text())
        except FileNotFoundError:
            return 0

    def commit(self, consumer: str, stream: str, next_offset: int) -> None:
        """Durably record that `consumer` has processed everything before `next_offset`."""
        path = self._offset_path(consumer, stream)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            fh.write(str(next_offset))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)

    def records_since(self, stream: str, offset: int) -> int:
        """How many records exist at or after `offset` (consumer lag)."""
        return max(0, self.stream(stream).next_offset - offset)
