"""Helpers for the log store tests: events, file surgery on logs, segments and digests."""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from garrison.logstore import digests, frames, segment
from garrison.logstore.digests import Signer
from garrison.logstore.frames import Frame
from garrison.logstore.segment import Sealed
from garrison.logstore.store import LOG_HEADER, Stream
from garrison.logstore.verify import Problem, Report

PASSPHRASE = b"logstore test passphrase"
KEY_FILE = "logstore-ed25519.pem"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def new_signer(directory: Path) -> Signer:
    """A fresh Ed25519 signer whose PEM files live in `directory`."""
    return Signer.load_or_create(directory / KEY_FILE, PASSPHRASE)


def iso(time_ns: int) -> str:
    """ISO 8601 (UTC, microseconds) of a time in ns, as events carry it."""
    return (EPOCH + dt.timedelta(microseconds=time_ns // 1000)).isoformat()


def event(i: int, **extra: Any) -> dict[str, Any]:
    """A small event carrying its id."""
    return {"id": i, "msg": f"event number {i}", **extra}


def ids(records: Any) -> list[int]:
    """The ids of records, in order."""
    return [r.event()["id"] for r in records]


def everything(stream: Stream) -> list[Any]:
    """Every readable record of a stream, oldest first."""
    return stream.read(0, limit=10**9)


def active_log(stream_dir: Path) -> Path:
    """The single active log of a stream directory."""
    (path,) = sorted(stream_dir.glob("*.log"))
    return path


@dataclass
class Log:
    """An active log taken apart: header bytes and its frames' bytes."""

    header: bytes
    chunks: list[bytes]
    frames: list[Frame]

    @classmethod
    def read(cls, path: Path) -> Log:
        """Split `path` into its header and intact frames (the file must be undamaged)."""
        raw = path.read_bytes()
        found, damage = frames.scan(raw, LOG_HEADER.size)
        assert damage is None, damage
        return cls(raw[: LOG_HEADER.size], [raw[f.start : f.end] for f in found], found)

    def write(self, path: Path) -> None:
        """Write the (possibly edited) frames back."""
        path.write_bytes(self.header + b"".join(self.chunks))

    def end_of(self, count: int) -> int:
        """Byte position just after the first `count` frames."""
        return LOG_HEADER.size + sum(len(c) for c in self.chunks[:count])


def records_of(path: Path) -> list[tuple[int, int, bytes]]:
    """(offset, time_ns, payload) of every record of a sealed segment."""
    sealed = Sealed.open(path)
    out: list[tuple[int, int, bytes]] = []
    for bi in range(len(sealed.footer.blocks)):
        out += frames.records(sealed.read_block(bi))[0]
    return out


def reseal(path: Path, stream: str, records: list[tuple[int, int, bytes]]) -> None:
    """Rewrite a sealed segment from `records`: valid CRCs, blocks and a consistent footer."""
    raw = b"".join(frames.encode(off, t, payload) for off, t, payload in records)
    idx, damage = frames.index(raw)
    assert damage is None
    segment.write(path, stream, raw, idx)


def digest_files(stream_dir: Path) -> list[Path]:
    """The digest files of a stream, oldest first."""
    return digests.list_files(stream_dir / "digests")


def resign_all(stream_dir: Path, signer: Signer) -> None:
    """Re-sign every digest of a stream with `signer`, keeping the chain consistent."""
    previous = ""
    for path in digest_files(stream_dir):
        d = digests.read(path).digest
        d = msgspec.structs.replace(
            d, key_id=digests.key_id(signer.public), previous_signature=previous
        )
        signed = signer.sign(d)
        path.write_bytes(msgspec.json.encode(signed))
        previous = signed.signature


def flip(path: Path, position: int, mask: int) -> None:
    """XOR one byte of a file in place."""
    with path.open("r+b") as fh:
        fh.seek(position)
        (byte,) = fh.read(1)
        fh.seek(position)
        fh.write(bytes([byte ^ mask]))
        fh.flush()
        os.fsync(fh.fileno())


def kinds(report: Report, file: str | None = None) -> set[str]:
    """Kinds of the problems of `report` (about `file` only, if given)."""
    return {p.kind for p in report.problems if file is None or p.file == file}


def about(report: Report, file: str) -> list[Problem]:
    """Problems naming `file`."""
    return [p for p in report.problems if p.file == file]


def describe(report: Report) -> str:
    """Every problem of a report, one a line, for assertion messages."""
    return "\n".join(p.line() for p in report.problems) or "(no problems)"


WRITER = Path(__file__).with_name("writer.py")


def writer_command(
    root: Path, key: Path, stream: str, start: int, ack: Path, **options: int
) -> list[str]:
    """Command line of a writer process (see writer.py); options are its --flags."""
    argv = [sys.executable, str(WRITER), "--root", str(root), "--key", str(key)]
    argv += ["--passphrase", PASSPHRASE.decode(), "--stream", stream]
    argv += ["--start", str(start), "--ack", str(ack)]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def read_acks(path: Path) -> dict[int, int]:
    """Acknowledged ``id -> offset`` from an ack file (an unfinished last line is ignored)."""
    if not path.exists():
        return {}
    acks: dict[int, int] = {}
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            ident, offset = line.split()
            assert int(ident) not in acks, f"id {ident} acknowledged twice"
            acks[int(ident)] = int(offset)
    return acks
