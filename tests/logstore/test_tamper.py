"""Tamper evidence: every kind of change to records, segments or digests is found and named.

One store is built per module (an expired segment, a two-block segment, several small ones, a
checkpointed active log with unsigned records after the checkpoint, and a second stream); each
example works on a fresh copy, changes it, and asserts what `verify` reports. Zero misses.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.logstore import digests, frames, segment, verify
from garrison.logstore.digests import Checkpoint, Digest, SegmentRef, Signer
from garrison.logstore.segment import Sealed, SegmentError
from garrison.logstore.store import LOG_HEADER, Store, StoreConfig
from garrison.logstore.verify import Report
from tests.logstore.helpers import (
    Log,
    about,
    active_log,
    describe,
    digest_files,
    event,
    flip,
    kinds,
    records_of,
    reseal,
    resign_all,
)

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
STREAM = "audit"


@dataclass(frozen=True)
class Layout:
    """What the base store holds."""

    base: Path
    segments: list[str]
    expired: str
    expired_bytes: bytes
    log: str
    checkpoint: Checkpoint
    unsigned: int


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, signer: Signer) -> Layout:
    """Build the base store once."""
    base = tmp_path_factory.mktemp("tamper-base") / "logstore"
    store = Store(base, signer=signer, config=StoreConfig(segment_bytes=1 << 20))
    stream = store.stream(STREAM)
    store.append(STREAM, [event(i, time="2020-02-02T00:00:00+00:00") for i in range(20)])
    stream.seal()
    expired = stream.sealed_segments()[0]
    expired_bytes = expired.read_bytes()
    for start in range(20, 1520, 100):
        store.append(STREAM, [event(i) for i in range(start, start + 100)])
    stream.seal()  # 1500 records: two blocks
    store.append("other", [event(i) for i in range(30)])
    store.stream("other").seal()
    store.append("other", [event(30)])
    store.stream("other").checkpoint()
    store.close()

    store = Store(base, signer=signer, config=StoreConfig(segment_bytes=4096))
    stream = store.stream(STREAM)
    for start in range(1520, 1820, 3):
        store.append(STREAM, [event(i) for i in range(start, start + 3)])
    stream.seal()
    assert stream.expire(time.time_ns()) == [expired.name]
    store.append(STREAM, [event(i) for i in range(1820, 1850)])
    signed = stream.checkpoint()
    assert signed is not None
    assert signed.digest.checkpoint is not None
    store.append(STREAM, [event(i) for i in range(1850, 1855)])
    segments = [p.name for p in stream.sealed_segments()]
    log = active_log(stream.dir).name
    store.close()
    assert len(segments) >= 5
    return Layout(base, segments, expired.name, expired_bytes, log, signed.digest.checkpoint, 5)


@contextmanager
def copy_of(layout: Layout) -> Iterator[Path]:
    """A fresh copy of the base store, removed afterwards."""
    work = layout.base.parent.parent / f"work-{time.monotonic_ns()}"
    shutil.copytree(layout.base, work / "logstore")
    try:
        yield work / "logstore"
    finally:
        shutil.rmtree(work)


def check(root: Path, public: object, **options: object) -> Report:
    """verify(), with every problem in the tampered stream only."""
    report = verify.verify(root, public, **options)  # type: ignore[arg-type]
    assert {p.stream for p in report.problems} <= {STREAM}, describe(report)
    return report


def assert_named(report: Report, file: str, expected: set[str]) -> None:
    """The file is reported, and with one of the expected kinds."""
    found = kinds(report, file)
    assert found, f"{file} not reported:\n{describe(report)}"
    assert found & expected, f"{file} reported as {found}, expected {expected}:\n{describe(report)}"


# --- no false positives --------------------------------------------------------------------------


def test_untouched_store_is_intact(layout: Layout, signer: Signer) -> None:
    """The base store (after an expiry, with unsigned records) verifies clean, deep or not."""
    for deep in (False, True):
        report = verify.verify(layout.base, signer.public, deep=deep)
        assert report.intact, describe(report)
        assert report.streams == 2
        assert any("not yet signed" in n for n in report.notes)
    assert verify.verify(layout.base, signer.public, since_ns=time.time_ns() - 10**12).intact


def test_reopened_and_maintained_store_stays_intact(layout: Layout, signer: Signer) -> None:
    """Opening, appending, sealing, checkpointing and maintaining the store raise no alarm."""
    with copy_of(layout) as root:
        store = Store(root, signer=signer, config=StoreConfig(segment_bytes=4096))
        try:
            stream = store.stream(STREAM)
            assert stream.notes == []
            assert store.append(STREAM, [event(1855)]) == [1855]
            store.maintain(time.time_ns() + 2 * 3600 * 10**9)
            stream.checkpoint()
        finally:
            store.close()
        report = check(root, signer.public, deep=True)
        assert report.intact, describe(report)


# --- sealed segments ---------------------------------------------------------------------------


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_any_flipped_byte_in_a_sealed_segment_is_detected(
    layout: Layout, signer: Signer, data: st.DataObject
) -> None:
    """A byte flipped anywhere in any sealed segment is reported for that segment."""
    with copy_of(layout) as root:
        name = data.draw(st.sampled_from(layout.segments), label="segment")
        path = root / STREAM / name
        position = data.draw(st.integers(0, path.stat().st_size - 1), label="position")
        flip(path, position, data.draw(st.integers(1, 255), label="mask"))
        for deep in (False, True):
            assert about(check(root, signer.public, deep=deep), name)


FOOTER_BYTES = [ord(c) for c in '-09 "{}[],:'] + [0x00, 0xFF]


def test_every_footer_byte_replaced_is_detected(layout: Layout, signer: Signer) -> None:
    """Every footer byte set to JSON-significant values is reported for the segment, no crash."""
    # Any changed byte changes the file's SHA-256, so verify hands the file to analyse_sealed:
    # the sweep calls that directly (thousands of cases), then runs verify on the last one.
    with copy_of(layout) as root:
        name = layout.segments[-1]  # a small one-block segment, for speed
        path = root / STREAM / name
        (ref,) = [
            r
            for p in digest_files(root / STREAM)
            for r in digests.read(p).digest.segments
            if r.file == name
        ]
        original = path.read_bytes()
        footer_start = original.rindex(b'{"version"')
        checked = 0
        for position in range(footer_start, len(original)):
            for value in FOOTER_BYTES:
                if original[position] == value:
                    continue
                changed = bytearray(original)
                changed[position] = value
                path.write_bytes(changed)
                assert segment.file_sha256(path) != ref.sha256
                problems = verify.analyse_sealed(STREAM, path, ref)
                assert problems, f"byte {position} set to {value}"
                assert {p.file for p in problems} == {name}
                checked += 1
        assert checked > 2000
        path.write_bytes(changed)
        report = verify.verify(root, signer.public)  # and the whole verify on the last case
        assert_named(report, name, {"modified", "truncated"})


@pytest.mark.parametrize("mask", [0x01, 0x40, 0x80, 0xC0, 0xFF])
@pytest.mark.parametrize("at", [4, 5, 6, 7, 8])
def test_damaged_zstd_frame_header_is_reported_not_a_crash(
    layout: Layout, signer: Signer, at: int, mask: int
) -> None:
    """A block whose zstd header claims a huge or empty content size is `modified`, no crash."""
    with copy_of(layout) as root:
        path = root / STREAM / layout.segments[0]  # the two-block segment
        blocks = Sealed.open(path).footer.blocks
        assert len(blocks) == 2
        for block in blocks:
            flip(path, block.pos + at, mask)
        for deep in (False, True):
            assert_named(check(root, signer.public, deep=deep), path.name, {"modified", "deleted"})
        for index in range(2):
            with pytest.raises(SegmentError):
                Sealed.open(path).read_block(index)


@pytest.mark.parametrize("index", range(6))
def test_deleted_sealed_segment_is_named_deleted(
    layout: Layout, signer: Signer, index: int
) -> None:
    """Removing a sealed segment file is reported as `deleted`, with its first offset."""
    name = layout.segments[index % len(layout.segments)]
    with copy_of(layout) as root:
        (root / STREAM / name).unlink()
        problems = about(check(root, signer.public), name)
        assert [p.kind for p in problems] == ["deleted"], problems
        assert problems[0].offset == segment.first_of(Path(name))


@FUZZ
@given(data=st.data())
def test_resealed_segment_with_a_changed_record_is_modified(
    layout: Layout, signer: Signer, data: st.DataObject
) -> None:
    """A segment rebuilt with one record's payload or time changed (CRCs valid) is `modified`."""
    with copy_of(layout) as root:
        name = data.draw(st.sampled_from(layout.segments), label="segment")
        path = root / STREAM / name
        records = records_of(path)
        i = data.draw(st.integers(0, len(records) - 1), label="record")
        off, t, payload = records[i]
        if data.draw(st.booleans(), label="change time"):
            records[i] = (off, t + data.draw(st.integers(1, 10**12)), payload)
        else:
            value = json.loads(payload)
            value["msg"] = data.draw(st.text(max_size=20).filter(lambda m: m != value["msg"]))
            records[i] = (off, t, msgspec.json.encode(value))
        reseal(path, STREAM, records)
        assert_named(check(root, signer.public), name, {"modified"})


@FUZZ
@given(data=st.data())
def test_records_deleted_swapped_or_inserted_in_a_segment_are_named(
    layout: Layout, signer: Signer, data: st.DataObject
) -> None:
    """Deleting, swapping or forging records inside a segment (footer rebuilt) names the change."""
    with copy_of(layout) as root:
        name = data.draw(st.sampled_from(layout.segments), label="segment")
        path = root / STREAM / name
        records = records_of(path)
        first, n = records[0][0], len(records)
        action = data.draw(st.sampled_from(["delete", "swap", "insert"]), label="action")
        if action == "delete":
            i = data.draw(st.integers(0, n - 1), label="index")
            del records[i]
            expected = {"deleted"}
        elif action == "swap":
            i = data.draw(st.integers(0, n - 2), label="i")
            j = data.draw(st.integers(i + 1, n - 1), label="j")
            records[i], records[j] = records[j], records[i]
            expected = {"reordered"}
        else:
            i = data.draw(st.integers(0, n), label="position")
            forged_offset = data.draw(
                st.one_of(st.integers(first, first + n - 1), st.integers(first + n, 2**40)),
                label="forged offset",
            )
            records.insert(i, (forged_offset, time.time_ns(), b'{"id":-1,"msg":"forged"}'))
            expected = {"inserted"}
        if not records:
            return
        reseal(path, STREAM, records)
        assert_named(check(root, signer.public), name, expected)


def test_extra_segment_is_uncovered(layout: Layout, signer: Signer) -> None:
    """A sealed segment no digest names is reported as `uncovered`."""
    with copy_of(layout) as root:
        forged = root / STREAM / segment.name_for(10**9, ".seg")
        reseal(forged, STREAM, [(10**9, time.time_ns(), b'{"id":"forged"}')])
        assert [p.kind for p in check(root, signer.public).problems] == ["uncovered"]


def test_copied_segment_under_another_name_is_uncovered(layout: Layout, signer: Signer) -> None:
    """An existing segment copied under a new name is reported, not silently counted."""
    with copy_of(layout) as root:
        source = root / STREAM / layout.segments[2]
        shutil.copy(source, root / STREAM / segment.name_for(10**9, ".seg"))
        assert_named(check(root, signer.public), segment.name_for(10**9, ".seg"), {"uncovered"})


def test_restored_expired_segment_is_reported(layout: Layout, signer: Signer) -> None:
    """A segment expired by retention that reappears is reported as `inserted`."""
    with copy_of(layout) as root:
        (root / STREAM / layout.expired).write_bytes(layout.expired_bytes)
        assert_named(check(root, signer.public), layout.expired, {"inserted"})


# --- the active log ----------------------------------------------------------------------------


def _cp_end(log: Log, layout: Layout) -> int:
    return log.end_of(layout.checkpoint.count)


@FUZZ
@given(data=st.data())
def test_flipped_byte_in_the_checkpointed_log_is_modified(
    layout: Layout, signer: Signer, data: st.DataObject
) -> None:
    """A byte flipped in a signed record of the active log is reported as `modified`."""
    with copy_of(layout) as root:
        path = root / STREAM / layout.log
        log = Log.read(path)
        position = data.draw(st.integers(LOG_HEADER.size, _cp_end(log, layout) - 1))
        flip(path, position, data.draw(st.integers(1, 255)))
        assert_named(check(root, signer.public), layout.log, {"modified"})


@FUZZ
@given(data=st.data())
def test_record_deleted_from_the_log_is_deleted(
    layout: Layout, signer: Signer, data: st.DataObject
) -> None:
    """Removing a signed record's frame from the active log is `deleted`, at its offset."""
    with copy_of(layout) as root:
        path = root / STREAM / layout.log
        log = Log.read(path)
        i = data.draw(st.integers(0, layout.checkpoint.count - 1))
        del log.chunks[i]
        log.write(path)
        report = check(root, signer.public)
        assert_named(report, layout.log, {"deleted"})
        assert layout.checkpoint.first + i in {p.offset for p in about(report, layout.log)}


@FUZZ
@given(data=st.data())
def test_records_swapped_in_the_log_are_reordered(
    layout: Layout, signer: Signer, data: st.DataObject
) -> None:
    """Swapping two signed records of the active log is reported as `reordered`."""
    with copy_of(layout) as root:
        path = root / STREAM / layout.log
        log = Log.read(path)
        i = data.draw(st.integers(0, layout.checkpoint.count - 2))
        j = data.draw(st.integers(i + 1, layout.checkpoint.count - 1))
        log.chunks[i], log.chunks[j] = log.chunks[j], log.chunks[i]
        log.write(path)
        assert_named(check(root, signer.public), layout.log, {"reordered"})


@FUZZ
@given(data=st.data())
def test_forged_record_in_the_log_is_inserted(
    layout: Layout, signer: Signer, data: st.DataObject
) -> None:
    """A forged record with a valid CRC slipped among the signed ones is `inserted`."""
    cp = layout.checkpoint
    with copy_of(layout) as root:
        path = root / STREAM / layout.log
        log = Log.read(path)
        i = data.draw(st.integers(0, cp.count - 1), label="position")
        offset = data.draw(
            st.one_of(
                st.integers(cp.first, cp.first + cp.count - 1),
                st.integers(0, cp.first - 1),
                st.integers(cp.first + cp.count, 2**40),
            ),
            label="forged offset",
        )
        payload = msgspec.json.encode(event(data.draw(st.integers(-1000, -1)), forged=True))
        log.chunks.insert(i, frames.encode(offset, time.time_ns(), payload))
        log.write(path)
        assert_named(check(root, signer.public), layout.log, {"inserted"})


@FUZZ
@given(data=st.data())
def test_log_truncated_below_the_checkpoint_is_truncated(
    layout: Layout, signer: Signer, data: st.DataObject
) -> None:
    """Cutting the active log below its checkpoint is `truncated` (mid-frame may read modified)."""
    with copy_of(layout) as root:
        path = root / STREAM / layout.log
        log = Log.read(path)
        if data.draw(st.booleans(), label="at a frame boundary"):
            k = data.draw(st.integers(0, layout.checkpoint.count - 1), label="records kept")
            size, expected = log.end_of(k), {"truncated"}
        else:
            size = data.draw(st.integers(0, _cp_end(log, layout) - 1), label="size")
            expected = {"truncated", "modified"}
        with path.open("r+b") as fh:
            fh.truncate(size)
        assert_named(check(root, signer.public), layout.log, expected)


def test_unsigned_records_may_change_without_alarm(layout: Layout, signer: Signer) -> None:
    """Records after the last checkpoint are not signed yet: changing them is not tampering."""
    with copy_of(layout) as root:
        path = root / STREAM / layout.log
        log = Log.read(path)
        del log.chunks[-layout.unsigned :]
        log.write(path)
        assert check(root, signer.public).intact


def test_deleted_active_log_is_deleted(layout: Layout, signer: Signer) -> None:
    """Removing the checkpointed active log is reported as `deleted`."""
    with copy_of(layout) as root:
        (root / STREAM / layout.log).unlink()
        assert_named(check(root, signer.public), layout.log, {"deleted"})


# --- digests -----------------------------------------------------------------------------------


def _digest_name(path: Path) -> str:
    return f"digests/{path.name}"


FAKE_REF = SegmentRef("00000000000000999999.seg", 999999, 1, 0, 0, "0" * 64, "0" * 64)


def _edit_segments(d: Digest) -> Digest:
    return msgspec.structs.replace(d, segments=d.segments[1:] if d.segments else [FAKE_REF])


def _edit_checkpoint(d: Digest) -> Digest:
    cp = d.checkpoint
    forged = Checkpoint("00000000000000999999.log", 999999, 0, "0" * 64)
    return msgspec.structs.replace(
        d, checkpoint=msgspec.structs.replace(cp, count=cp.count - 1) if cp else forged
    )


def _edit_expired(d: Digest) -> Digest:
    return msgspec.structs.replace(d, expired=[] if d.expired else [FAKE_REF])


DIGEST_EDITS: dict[str, Callable[[Digest], Digest]] = {
    "time": lambda d: msgspec.structs.replace(d, time="2000-01-01T00:00:00+00:00"),
    "sealed_through": lambda d: msgspec.structs.replace(d, sealed_through=d.sealed_through + 1),
    "segments": _edit_segments,
    "checkpoint": _edit_checkpoint,
    "expired": _edit_expired,
}


@pytest.mark.parametrize("edit", DIGEST_EDITS.values(), ids=DIGEST_EDITS.keys())
@pytest.mark.parametrize("which", [0, 2, -3, -2, -1])
def test_edited_digest_has_a_bad_signature(
    layout: Layout, signer: Signer, edit: Callable[[Digest], Digest], which: int
) -> None:
    """A digest edited without the key (signature kept) is reported as `bad-signature`."""
    with copy_of(layout) as root:
        path = digest_files(root / STREAM)[which]
        signed = digests.read(path)
        forged = msgspec.structs.replace(signed, digest=edit(signed.digest))
        assert forged != signed
        path.write_bytes(msgspec.json.encode(forged))
        assert_named(check(root, signer.public), _digest_name(path), {"bad-signature"})


def test_unparsable_digest_is_modified(layout: Layout, signer: Signer) -> None:
    """A digest file that is no longer a digest is reported as `modified`."""
    with copy_of(layout) as root:
        path = digest_files(root / STREAM)[1]
        path.write_bytes(path.read_bytes()[:-10])
        assert_named(check(root, signer.public), _digest_name(path), {"modified"})


def test_digests_resigned_with_another_key_are_bad_signatures(
    layout: Layout, signer: Signer, other_signer: Signer
) -> None:
    """Re-signing the whole chain with another key fails against the store's public key."""
    with copy_of(layout) as root:
        resign_all(root / STREAM, other_signer)
        report = check(root, signer.public)
        for path in digest_files(root / STREAM):
            assert "bad-signature" in kinds(report, _digest_name(path))
        assert verify.verify(root, other_signer.public, streams=[STREAM]).intact


@pytest.mark.parametrize("which", [1, 3, 5])
def test_deleted_middle_digest_breaks_the_chain(layout: Layout, signer: Signer, which: int) -> None:
    """Removing a digest from the middle of the chain is `missing` and `broken-chain`."""
    with copy_of(layout) as root:
        files = digest_files(root / STREAM)
        files[which].unlink()
        report = check(root, signer.public)
        follower = _digest_name(files[which + 1])
        assert {"missing", "broken-chain"} <= kinds(report, follower), describe(report)


def test_deleted_newest_digest_is_caught_by_an_anchor(layout: Layout, signer: Signer) -> None:
    """Dropping the newest (checkpoint) digest passes alone, but an exported anchor catches it."""
    with copy_of(layout) as root:
        newest = digest_files(root / STREAM)[-1]
        anchor = digests.read(newest)
        assert verify.verify(root, signer.public, anchors=[anchor]).intact
        newest.unlink()
        assert verify.verify(root, signer.public).intact  # a chain cut at its end still chains
        report = check(root, signer.public, anchors=[anchor])
        assert [p.kind for p in report.problems] == ["deleted"], describe(report)
        assert report.problems[0].file == newest.name


def test_history_rewritten_with_the_real_key_is_caught_by_an_anchor(
    layout: Layout, signer: Signer
) -> None:
    """Even the key holder cannot rewrite signed history past an exported anchor."""
    with copy_of(layout) as root:
        newest = digest_files(root / STREAM)[-1]
        anchor = digests.read(newest)
        signed = digests.read(newest)
        rewritten = signer.sign(msgspec.structs.replace(signed.digest, time="1999-09-09T09:09:09"))
        newest.write_bytes(msgspec.json.encode(rewritten))
        assert verify.verify(root, signer.public).intact
        assert_named(check(root, signer.public, anchors=[anchor]), newest.name, {"broken-chain"})


def test_other_key_fails_everything(layout: Layout, other_signer: Signer) -> None:
    """Checked against an unrelated public key, every digest is a `bad-signature`."""
    report = verify.verify(layout.base, other_signer.public)
    assert kinds(report) == {"bad-signature"}
    assert len(report.problems) == report.digests
