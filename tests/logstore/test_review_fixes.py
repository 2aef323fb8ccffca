"""Attacks found in review: signed records rewritten before a seal, stray logs, deleted streams."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from garrison.core.errors import StoreCorruptError, UsageError
from garrison.logstore import frames, query, verify
from garrison.logstore.digests import Signer
from garrison.logstore.store import LOG_HEADER, LOG_MAGIC, Store

STREAM = "audit"


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    """A signing key."""
    return Signer.load_or_create(tmp_path / "key.pem", b"pass")


def _store(root: Path, signer: Signer) -> Store:
    store = Store(root, signer=signer)
    store.append(STREAM, [{"actor": "mallory", "n": i} for i in range(10)])
    store.stream(STREAM).checkpoint()
    return store


def _rewrite_record(log: Path, offset: int, payload: bytes) -> None:
    raw = log.read_bytes()
    found, _ = frames.scan(raw, LOG_HEADER.size)
    target = found[offset]
    new = frames.encode(target.offset, target.time_ns, payload)
    log.write_bytes(raw[: target.start] + new + raw[target.end :])


def test_checkpointed_record_rewritten_then_sealed_is_refused(
    tmp_path: Path, signer: Signer
) -> None:
    """A signed record rewritten with a valid CRC is never sealed over, and verify names it."""
    store = _store(tmp_path / "s", signer)
    log = next((tmp_path / "s" / STREAM).glob("*.log"))
    _rewrite_record(log, 3, b'{"actor":"alice","n":3}')
    with pytest.raises(StoreCorruptError, match="signed at a checkpoint have changed"):
        store.stream(STREAM).seal()
    report = verify.verify(tmp_path / "s", signer.public)
    assert {p.kind for p in report.problems} == {"modified"}
    with pytest.raises(StoreCorruptError):
        Store(tmp_path / "s", signer=signer).stream(STREAM)


def test_signed_record_deleted_and_renumbered_is_refused(tmp_path: Path, signer: Signer) -> None:
    """Dropping a signed record and renumbering the rest is caught on the next open."""
    _store(tmp_path / "s", signer).close()
    log = next((tmp_path / "s" / STREAM).glob("*.log"))
    raw = log.read_bytes()
    found, _ = frames.scan(raw, LOG_HEADER.size)
    kept = [f for f in found if f.offset != 4]
    body = b"".join(frames.encode(i, f.time_ns, f.payload) for i, f in enumerate(kept))
    log.write_bytes(raw[: LOG_HEADER.size] + body)
    with pytest.raises(StoreCorruptError):
        Store(tmp_path / "s", signer=signer).stream(STREAM)
    assert not verify.verify(tmp_path / "s", signer.public).intact


def test_stray_log_is_reported_and_never_read(tmp_path: Path, signer: Signer) -> None:
    """A forged extra .log is named by verify and ignored by search."""
    store = _store(tmp_path / "s", signer)
    forged = tmp_path / "s" / STREAM / ("9" * 20 + ".log")
    forged.write_bytes(LOG_HEADER.pack(LOG_MAGIC, 0) + frames.encode(0, 0, b'{"actor":"alice"}'))
    report = verify.verify(tmp_path / "s", signer.public)
    assert [(p.file, p.kind) for p in report.problems] == [(forged.name, "inserted")]
    hits = list(query.search(store.stream(STREAM), query.parse("actor=mallory"), limit=None))
    assert len(hits) == 10


def test_deleted_stream_directory_is_reported(tmp_path: Path, signer: Signer) -> None:
    """A required stream (audit) that vanished whole is `deleted`, not silently absent."""
    _store(tmp_path / "s", signer).close()
    shutil.rmtree(tmp_path / "s" / STREAM)
    assert verify.verify(tmp_path / "s", signer.public).intact  # nothing left to check...
    report = verify.verify(tmp_path / "s", signer.public, required=[STREAM])
    assert [(p.stream, p.kind) for p in report.problems] == [(STREAM, "deleted")]


def test_oversized_or_out_of_range_records_are_refused(tmp_path: Path, signer: Signer) -> None:
    """Records the frame format cannot hold are refused up front with a reason."""
    stream = Store(tmp_path / "s", signer=signer).stream("app")
    with pytest.raises(UsageError, match="at most"):
        stream.append([(0, b"x" * (frames.MAX_PAYLOAD + 1))])
    with pytest.raises(UsageError, match="1678-2262"):
        stream.append([(2**63, b"{}")])
    assert stream.next_offset == 0
