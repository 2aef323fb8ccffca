"""Crash safety: a writer killed by SIGKILL at random moments loses no acknowledged event."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from garrison.logstore import verify
from garrison.logstore.digests import Signer
from garrison.logstore.store import Store, StoreConfig
from tests.logstore.helpers import (
    active_log,
    describe,
    digest_files,
    event,
    everything,
    read_acks,
    writer_command,
)

KILLS = 25
STREAM = "crash"


def _wait_for_first_ack(ack: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ack.exists() and ack.stat().st_size > 0:
            return
        assert proc.poll() is None, f"writer exited early with {proc.returncode}"
        time.sleep(0.005)
    pytest.fail("the writer acknowledged nothing in time")


def _check_after_crash(root: Path, signer: Signer, acked: dict[int, int]) -> list[str]:
    """Reopen: every acknowledged event once at its offset, offsets contiguous, verify intact."""
    store = Store(root, signer=signer, config=StoreConfig(segment_bytes=1536))
    try:
        stream = store.stream(STREAM)
        notes = [n.reason for n in stream.notes]
        records = everything(stream)
        offsets = [r.offset for r in records]
        assert offsets == list(range(len(records))), "offsets are not contiguous from 0"
        found = [r.event()["id"] for r in records]
        assert len(found) == len(set(found)), "an event is stored twice"
        at = dict(zip(found, offsets, strict=True))
        lost = [i for i in acked if i not in at]
        assert not lost, f"acknowledged events lost: {lost[:10]}"
        moved = [i for i, off in acked.items() if at[i] != off]
        assert not moved, f"events stored at another offset than acknowledged: {moved[:10]}"
        stream.checkpoint()  # covers a segment sealed just before the crash, and the active log
    finally:
        store.close()
    report = verify.verify(root, signer.public, deep=True)
    assert report.intact, describe(report)
    return notes


def test_sigkill_at_random_moments_loses_no_acknowledged_event(
    root: Path, signer: Signer, key_path: Path, tmp_path: Path
) -> None:
    """25 SIGKILLs mid-append, mid-seal and mid-checkpoint: acked events survive, verify intact."""
    rng = random.Random(20240601)  # noqa: S311  # reproducible kill delays, not crypto
    ack = tmp_path / "acks"
    acked: dict[int, int] = {}
    recoveries: list[str] = []
    for kill in range(KILLS):
        proc = subprocess.Popen(
            writer_command(
                root,
                key_path,
                STREAM,
                kill * 1_000_000,
                ack,
                segment_bytes=1536,
                max_batch=6,
                checkpoint_every=7,
                seed=kill,
            )
        )
        try:
            _wait_for_first_ack(ack, proc, timeout=30)
            time.sleep(rng.uniform(0.0, 0.12))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the writer ended before it was killed"
        new = read_acks(ack)
        assert not set(new) & set(acked)
        acked |= new
        ack.unlink()
        recoveries += _check_after_crash(root, signer, acked)
    assert len(acked) > KILLS  # every run acknowledged something
    # Kills that hit a seal leave work for recovery; the notes say what it did.
    assert all("removed" in r or "cut" in r or "rewrote" in r for r in recoveries)


def _sealed_under_crash(
    root: Path, signer: Signer, damage: Callable[[Path, bytes, Path], None]
) -> None:
    """Seal a log, then put the directory back as a crash at some step of the seal leaves it."""
    store = Store(root, signer=signer)
    stream = store.stream(STREAM)
    store.append(STREAM, [event(i) for i in range(12)])
    stream.checkpoint()
    old = active_log(stream.dir)
    saved = old.read_bytes()
    stream.seal()
    new = active_log(stream.dir)
    store.close()
    damage(old, saved, new)


def _before_digest(old: Path, saved: bytes, new: Path) -> None:
    digest_files(old.parent)[-1].unlink()
    new.unlink()
    old.write_bytes(saved)


def _before_new_log(old: Path, saved: bytes, new: Path) -> None:
    new.unlink()
    old.write_bytes(saved)


def _new_log_half_made(old: Path, saved: bytes, new: Path) -> None:
    new.write_bytes(b"")
    old.write_bytes(saved)


def _before_unlink(old: Path, saved: bytes, new: Path) -> None:
    old.write_bytes(saved)


def _before_rename(old: Path, saved: bytes, new: Path) -> None:
    seg = old.with_suffix(".seg")
    shutil.move(seg, seg.with_suffix(".tmp"))
    _before_digest(old, saved, new)


CRASH_POINTS = {
    "segment written, digest not": _before_digest,
    "digest written, no new log": _before_new_log,
    "new log created without header": _new_log_half_made,
    "new log created, old not unlinked": _before_unlink,
    "segment still a .tmp": _before_rename,
}


@pytest.mark.parametrize("crash", CRASH_POINTS.values(), ids=CRASH_POINTS.keys())
def test_crash_at_each_step_of_a_seal_is_recovered(
    root: Path, signer: Signer, crash: Callable[[Path, bytes, Path], None]
) -> None:
    """Whatever step of a seal a crash interrupts, reopening keeps each record once and signs it."""
    _sealed_under_crash(root, signer, crash)
    store = Store(root, signer=signer)
    try:
        stream = store.stream(STREAM)
        assert stream.notes
        assert [r.event()["id"] for r in everything(stream)] == list(range(12))
        assert store.append(STREAM, [event(12)]) == [12]
        assert len(list(stream.dir.glob("*.log"))) == 1
        assert not list(stream.dir.glob("*.tmp"))
        stream.checkpoint()
        assert [r.event()["id"] for r in everything(stream)] == list(range(13))
    finally:
        store.close()
    report = verify.verify(root, signer.public, deep=True)
    assert report.intact, describe(report)
