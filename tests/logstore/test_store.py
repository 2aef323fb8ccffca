"""The store: appends, offsets, rolling, concurrent writers, consumers, retention, repair."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from garrison.core.errors import StoreCorruptError, UsageError
from garrison.logstore import digests, frames, verify
from garrison.logstore.digests import Signer
from garrison.logstore.store import LOG_HEADER, Store, StoreConfig
from tests.logstore.helpers import (
    Log,
    about,
    active_log,
    describe,
    digest_files,
    event,
    everything,
    flip,
    ids,
    read_acks,
    writer_command,
)

HOUR_NS = 3600 * 10**9
DAY_NS = 86400 * 10**9

OpenStore = Callable[..., Store]


def test_append_then_read_round_trip(open_store: OpenStore) -> None:
    """Appended events read back unchanged, in order, with their offsets and event times."""
    store = open_store()
    events = [event(i, nested={"k": [1, 2, {"x": None}]}, ok=i % 2 == 0) for i in range(10)]
    events.append(event(10, time="2024-05-01T12:00:00.123456+00:00"))
    offsets = store.append("audit", events)
    assert offsets == list(range(11))
    records = everything(store.stream("audit"))
    assert [r.event() for r in records] == events
    assert [r.offset for r in records] == offsets
    assert all(r.stream == "audit" for r in records)
    assert records[-1].time_ns == 1714564800_123456_000


def test_offsets_increase_per_stream_and_survive_reopen(open_store: OpenStore) -> None:
    """Each stream numbers its records from 0 without gaps, and a reopened store continues."""
    store = open_store()
    assert store.append("audit", [event(0), event(1)]) == [0, 1]
    assert store.append("app", [event(0)]) == [0]
    assert store.append("audit", [event(2)]) == [2]
    assert store.append("audit", []) == []
    store.close()

    again = open_store()
    assert again.append("audit", [event(3), event(4)]) == [3, 4]
    assert again.append("app", [event(1)]) == [1]
    assert ids(everything(again.stream("audit"))) == [0, 1, 2, 3, 4]
    assert again.stream_names() == ["app", "audit"]
    assert again.stream("audit").notes == []


def test_segments_roll_by_size(open_store: OpenStore, root: Path, signer: Signer) -> None:
    """A small segment_bytes seals many segments, each named by a digest, none losing a record."""
    store = open_store(segment_bytes=2048)
    for i in range(300):
        assert store.append("audit", [event(i)]) == [i]
    stream = store.stream("audit")
    sealed = stream.sealed_segments()
    assert len(sealed) >= 5
    assert len(digest_files(stream.dir)) == len(sealed)
    assert ids(everything(stream)) == list(range(300))
    # Every segment starts where the previous ended; the active log continues after the last.
    firsts = [int(p.name[:20]) for p in sealed]
    assert firsts[0] == 0
    assert firsts == sorted(set(firsts))
    assert int(active_log(stream.dir).name[:20]) > firsts[-1]
    assert verify.verify(root, signer.public, deep=True).intact


def test_segments_roll_by_time(open_store: OpenStore, root: Path, signer: Signer) -> None:
    """maintain() seals an active segment older than segment_seconds, and only one with records."""
    store = open_store(segment_seconds=3600)
    stream = store.stream("audit")
    store.append("audit", [event(i) for i in range(5)])
    stream.maintain(time.time_ns() + 10 * 60 * 10**9)  # 10 minutes later: not due
    assert stream.sealed_segments() == []

    stream.maintain(time.time_ns() + 2 * HOUR_NS)
    assert [p.name for p in stream.sealed_segments()] == ["00000000000000000000.seg"]
    assert active_log(stream.dir).name == "00000000000000000005.log"

    stream.maintain(time.time_ns() + 4 * HOUR_NS)  # the new active log is empty: nothing to seal
    assert len(stream.sealed_segments()) == 1
    assert store.append("audit", [event(5)]) == [5]
    assert ids(everything(stream)) == list(range(6))
    assert verify.verify(root, signer.public).intact


def test_read_across_sealed_and_active(open_store: OpenStore) -> None:
    """read(offset, limit) starts anywhere and runs from sealed segments into the active log."""
    store = open_store(segment_bytes=2048)
    store.append("audit", [event(i) for i in range(100)])  # one seal after this batch
    store.append("audit", [event(i) for i in range(100, 1300)])  # a two-block segment
    store.append("audit", [event(i) for i in range(1300, 1320)])
    stream = store.stream("audit")
    stream.seal()
    store.append("audit", [event(i) for i in range(1320, 1330)])
    assert len(stream.sealed_segments()) == 3
    assert stream.active_first == 1320

    assert ids(everything(stream)) == list(range(1330))
    for start, limit in [(0, 5), (95, 10), (1000, 50), (1299, 30), (1310, 100), (1329, 5)]:
        records = stream.read(start, limit)
        expected = list(range(start, min(start + limit, 1330)))
        assert [r.offset for r in records] == expected
        assert ids(records) == expected
    assert stream.read(1330) == []


def test_two_instances_append_alternately(root: Path, signer: Signer) -> None:
    """Two stores on one directory (two processes' view) get distinct consecutive offsets."""
    config = StoreConfig(segment_bytes=1024)
    a = Store(root, signer=signer, config=config)
    b = Store(root, signer=signer, config=config)
    try:
        got: list[int] = []
        for i in range(0, 200, 2):
            got += a.append("audit", [event(i)])
            got += b.append("audit", [event(i + 1)])
        assert got == list(range(200))
        a.append("audit", [event(200), event(201)])
        b.stream("audit").checkpoint()
        for store in (a, b):
            assert ids(everything(store.stream("audit"))) == list(range(202))
        assert len(a.stream("audit").sealed_segments()) >= 5
        report = verify.verify(root, signer.public, deep=True)
        assert report.intact, describe(report)
    finally:
        a.close()
        b.close()


def test_two_processes_append_concurrently(
    root: Path, signer: Signer, key_path: Path, tmp_path: Path
) -> None:
    """Three writer processes at once: offsets unique and contiguous, every record present once."""
    writers, batches = 3, 40
    acks = [tmp_path / f"ack-{n}" for n in range(writers)]
    procs = [
        subprocess.Popen(
            writer_command(
                root,
                key_path,
                "audit",
                n * 1_000_000,
                acks[n],
                batches=batches,
                segment_bytes=2048,
                checkpoint_every=15,
                seed=n,
            )
        )
        for n in range(writers)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    acked: dict[int, int] = {}
    for path in acks:
        acked |= read_acks(path)
    offsets = sorted(acked.values())
    assert offsets == list(range(len(offsets)))

    store = Store(root, signer=signer)
    try:
        records = everything(store.stream("audit"))
        assert {r.event()["id"]: r.offset for r in records} == acked
        assert [r.offset for r in records] == offsets
        # Each writer's own records keep their order.
        for n in range(writers):
            mine = [r.event()["id"] for r in records if r.event()["writer"] == n * 1_000_000]
            assert mine == sorted(mine)
        store.stream("audit").checkpoint()
    finally:
        store.close()
    report = verify.verify(root, signer.public, deep=True)
    assert report.intact, describe(report)


def test_consumer_offsets_are_durable(open_store: OpenStore) -> None:
    """commit() survives a reopen; a consumer that never committed starts at 0; lag is counted."""
    store = open_store()
    store.append("audit", [event(i) for i in range(7)])
    assert store.committed("siem", "audit") == 0
    store.commit("siem", "audit", 5)
    store.commit("archiver", "audit", 2)
    store.commit("siem", "audit", 6)
    store.close()

    again = open_store()
    assert again.committed("siem", "audit") == 6
    assert again.committed("archiver", "audit") == 2
    assert again.committed("siem", "app") == 0
    assert again.records_since("audit", 6) == 1
    assert not list((again.root / ".consumers").glob("*.tmp"))
    with pytest.raises(UsageError, match="invalid consumer name"):
        again.commit("Bad Name", "audit", 1)


def _old_then_new(store: Store, stream: str, old_time: str, n_old: int, n_new: int) -> None:
    """Seal a segment of old events, then one of current events, then leave some active."""
    store.append(stream, [event(i, time=old_time) for i in range(n_old)])
    store.stream(stream).seal()
    store.append(stream, [event(i) for i in range(n_old, n_old + n_new)])
    store.stream(stream).seal()
    store.append(stream, [event(n_old + n_new)])


def test_expire_deletes_old_segments_and_verify_tells_expiry_from_deletion(
    open_store: OpenStore, root: Path, signer: Signer
) -> None:
    """expire() removes segments past retention, signs that, and verify still says intact."""
    store = open_store(retention_days={"app": 30})
    _old_then_new(store, "app", "2020-01-01T00:00:00+00:00", 10, 10)
    stream = store.stream("app")
    assert stream.expire(time.time_ns()) == ["00000000000000000000.seg"]
    latest = stream.latest_digest()
    assert latest is not None
    assert [ref.file for ref in latest.digest.expired] == ["00000000000000000000.seg"]
    assert stream.expire(time.time_ns()) == []  # nothing more is due
    assert ids(everything(stream)) == list(range(10, 21))
    stream.checkpoint()
    report = verify.verify(root, signer.public, deep=True)
    assert report.intact, describe(report)

    # The same store with a segment deleted by hand instead.
    (remaining,) = stream.sealed_segments()
    remaining.unlink()
    report = verify.verify(root, signer.public)
    assert [p.kind for p in about(report, remaining.name)] == ["deleted"]
    assert about(report, remaining.name)[0].offset == 10


def test_expire_every_sealed_segment_then_reopen(open_store: OpenStore) -> None:
    """A stream whose sealed segments all expired reopens and keeps numbering where it was."""
    store = open_store(default_retention_days=1)
    store.append("app", [event(i, time="2020-01-01T00:00:00+00:00") for i in range(5)])
    store.stream("app").seal()
    assert store.stream("app").expire(time.time_ns()) == ["00000000000000000000.seg"]
    store.close()

    again = open_store(default_retention_days=1)
    assert again.append("app", [event(5)]) == [5]
    assert ids(everything(again.stream("app"))) == [5]


def test_expire_a_middle_segment_keeps_verify_intact(
    open_store: OpenStore, root: Path, signer: Signer
) -> None:
    """Retention may expire a segment of back-dated events between newer ones: no false alarm."""
    store = open_store(default_retention_days=30)
    stream = store.stream("app")
    store.append("app", [event(i) for i in range(5)])
    stream.seal()
    store.append("app", [event(i, time="2020-01-01T00:00:00+00:00") for i in range(5, 10)])
    stream.seal()
    store.append("app", [event(i) for i in range(10, 15)])
    stream.seal()
    assert stream.expire(time.time_ns()) == ["00000000000000000005.seg"]
    stream.checkpoint()
    report = verify.verify(root, signer.public, deep=True)
    assert report.intact, describe(report)
    store.close()

    again = open_store(default_retention_days=30)
    assert again.append("app", [event(15)]) == [15]
    assert ids(everything(again.stream("app"))) == [*range(5), *range(10, 16)]


def test_expiry_by_one_instance_is_seen_by_another(root: Path, signer: Signer) -> None:
    """A second store on the same directory does not trip over segments the first expired."""
    config = StoreConfig(default_retention_days=30)
    a = Store(root, signer=signer, config=config)
    b = Store(root, signer=signer, config=config)
    try:
        _old_then_new(a, "app", "2020-01-01T00:00:00+00:00", 4, 4)
        b.append("app", [event(9)])  # b now knows both sealed segments
        assert a.stream("app").expire(time.time_ns()) == ["00000000000000000000.seg"]
        assert b.stream("app").expire(time.time_ns()) == []
        b.stream("app").checkpoint()
        assert ids(everything(b.stream("app"))) == list(range(4, 10))
    finally:
        a.close()
        b.close()
    report = verify.verify(root, signer.public)
    assert report.intact, describe(report)


@pytest.mark.parametrize("name", ["", "Audit", "1audit", "a" * 33, "../etc", "a/b", "a b", "é"])
def test_invalid_stream_name_is_a_clear_error(open_store: OpenStore, name: str) -> None:
    """Stream names outside [a-z][a-z0-9_-]{0,31} are refused with a message saying so."""
    store = open_store()
    with pytest.raises(UsageError, match="invalid stream name"):
        store.append(name, [event(0)])
    with pytest.raises(UsageError, match="invalid stream name"):
        store.stream(name)


def _half_frame(next_offset: int) -> bytes:
    whole = frames.encode(next_offset, time.time_ns(), b'{"id":"never acknowledged"}')
    return whole[: len(whole) // 2]


TORN_TAILS = {
    "half a frame": _half_frame,
    "part of a frame header": lambda _: b"\x2a\x00\x00\x00\x11\x22",
    "a whole frame with a bad checksum": lambda n: (
        bytearray(frames.encode(n, 1, b"{}"))[:-1] + b"!"
    ),
    "zero-filled blocks": lambda _: bytes(4096),
}


@pytest.mark.parametrize("tail", TORN_TAILS.values(), ids=TORN_TAILS.keys())
def test_torn_tail_is_cut_on_reopen(
    open_store: OpenStore, tail: Callable[[int], bytes], root: Path, signer: Signer
) -> None:
    """An unfinished write at the end of the active log is cut on open and reported in notes."""
    store = open_store()
    store.append("audit", [event(i) for i in range(5)])
    store.stream("audit").checkpoint()
    path = active_log(store.stream("audit").dir)
    intact_size = path.stat().st_size
    store.close()
    with path.open("ab") as fh:
        fh.write(bytes(tail(5)))

    again = open_store()
    stream = again.stream("audit")
    assert path.stat().st_size == intact_size
    assert len(stream.notes) == 1
    assert stream.notes[0].file == path.name
    assert "torn tail" in stream.notes[0].reason
    assert ids(everything(stream)) == list(range(5))
    assert again.append("audit", [event(5)]) == [5]
    assert ids(everything(stream)) == list(range(6))
    stream.checkpoint()
    assert verify.verify(root, signer.public).intact


def test_damage_inside_the_active_log_is_refused_not_truncated(
    open_store: OpenStore, root: Path, signer: Signer
) -> None:
    """A bad frame followed by good ones is not a torn write: open fails and cuts nothing."""
    store = open_store()
    store.append("audit", [event(i) for i in range(10)])
    path = active_log(store.stream("audit").dir)
    store.close()
    log = Log.read(path)
    flip(path, log.frames[4].start + 20, 0x01)  # a byte of record 4's payload
    before = path.read_bytes()

    with pytest.raises(StoreCorruptError, match="damaged at byte"):
        Store(root, signer=signer).stream("audit")
    assert path.read_bytes() == before


def test_reordered_records_in_the_active_log_are_refused(open_store: OpenStore) -> None:
    """Frames with valid checksums but out-of-sequence offsets make open fail."""
    store = open_store()
    store.append("audit", [event(i) for i in range(6)])
    path = active_log(store.stream("audit").dir)
    store.close()
    log = Log.read(path)
    log.chunks[2], log.chunks[3] = log.chunks[3], log.chunks[2]
    log.write(path)
    with pytest.raises(StoreCorruptError, match="holds offset 3 where 2 belongs"):
        open_store().stream("audit")


def test_log_header_cut_short_is_rewritten(open_store: OpenStore) -> None:
    """An active log whose header write was interrupted is rewritten on open."""
    store = open_store()
    path = active_log(store.stream("audit").dir)
    store.close()
    path.write_bytes(path.read_bytes()[:5])
    again = open_store()
    assert "header" in again.stream("audit").notes[0].reason
    assert again.append("audit", [event(0)]) == [0]
    assert path.stat().st_size > LOG_HEADER.size


def test_crash_between_seal_and_deleting_the_old_log_is_recovered(
    open_store: OpenStore, root: Path, signer: Signer
) -> None:
    """A sealed log left behind is ignored by readers, removed on open, and loses nothing."""
    store = open_store()
    stream = store.stream("audit")
    store.append("audit", [event(i) for i in range(8)])
    old = active_log(stream.dir)
    saved = old.read_bytes()
    stream.seal()
    store.append("audit", [event(8)])
    old.write_bytes(saved)  # as if the process died before unlinking it

    # A reader that sees both logs still returns every record once.
    assert ids(everything(stream)) == list(range(9))
    store.close()

    again = open_store()
    stream = again.stream("audit")
    assert not old.exists()
    assert [n.file for n in stream.notes] == [old.name]
    assert ids(everything(stream)) == list(range(9))
    assert again.append("audit", [event(9)]) == [9]
    stream.checkpoint()
    report = verify.verify(root, signer.public, deep=True)
    assert report.intact, describe(report)


def test_unfinished_seal_file_is_removed(open_store: OpenStore) -> None:
    """A .tmp left by a seal that never finished is removed on open and reported."""
    store = open_store()
    store.append("audit", [event(i) for i in range(3)])
    stream_dir = store.stream("audit").dir
    store.close()
    (stream_dir / "00000000000000000000.tmp").write_bytes(b"GRSEG01\npartial")
    again = open_store()
    assert "unfinished seal" in again.stream("audit").notes[0].reason
    assert not (stream_dir / "00000000000000000000.tmp").exists()
    assert ids(everything(again.stream("audit"))) == [0, 1, 2]


def test_read_only_store_reads_but_cannot_sign(open_store: OpenStore, root: Path) -> None:
    """A store opened without a key reads every record but refuses to seal."""
    store = open_store(segment_bytes=1024)
    store.append("audit", [event(i) for i in range(40)])
    store.close()
    reader = Store(root)
    try:
        assert ids(everything(reader.stream("audit"))) == list(range(40))
        reader.append("audit", [event(40)])
        with pytest.raises(Exception, match="read-only"):
            reader.stream("audit").seal()
    finally:
        reader.close()


def test_digests_chain_and_name_every_sealed_segment(
    open_store: OpenStore, root: Path, signer: Signer
) -> None:
    """Each digest is signed, follows the previous one, and sealed_through tracks the seals."""
    store = open_store(segment_bytes=1024)
    for i in range(60):
        store.append("audit", [event(i)])
    stream = store.stream("audit")
    assert stream.active_count > 0
    stream.checkpoint()
    chain = [digests.read(p) for p in digest_files(stream.dir)]
    assert [s.digest.seq for s in chain] == list(range(len(chain)))
    previous = ""
    for signed in chain:
        assert digests.check_signature(signed, signer.public)
        assert signed.digest.previous_signature == previous
        previous = signed.signature
    named = [ref.file for s in chain for ref in s.digest.segments]
    assert named == [p.name for p in stream.sealed_segments()]
    assert chain[-1].digest.sealed_through == stream.active_first - 1
    assert chain[-1].digest.checkpoint is not None
    assert chain[-1].digest.checkpoint.count == stream.active_count
    assert stream.checkpoint() is None  # nothing new to sign
    shutil.rmtree(root / "audit" / "digests")
    assert not verify.verify(root, signer.public).intact
