"""The spool: FIFO order, durability across reopen, the bound (oldest dropped, reported)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from garrison.core.errors import ConflictError, UsageError, ValidationError
from garrison.pipeline.spool import Spool


def drain(spool: Spool) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    while (head := spool.peek()) is not None:
        out.append(head)
        assert spool.ack(head[0])
    return out


def test_fifo_order(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool", 1000) as spool:
        assert spool.peek() is None
        for i in range(12):  # past 9 and 10: names must sort by number, not text
            assert spool.put(f"b{i}", b"x" * i)
        assert spool.count == 12
        assert spool.size_bytes == sum(range(12))
        assert drain(spool) == [(f"b{i}", b"x" * i) for i in range(12)]
        assert spool.count == 0
        assert spool.size_bytes == 0


def test_peek_does_not_remove_and_ack_is_idempotent(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool", 100) as spool:
        spool.put("a", b"1")
        spool.put("b", b"2")
        assert spool.peek() == ("a", b"1")
        assert spool.peek() == ("a", b"1")
        assert spool.ack("b")  # acking out of order is allowed
        assert not spool.ack("b")
        assert not spool.ack("never")
        assert drain(spool) == [("a", b"1")]


def test_the_same_batch_is_kept_once(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool", 100) as spool:
        assert spool.put("a", b"payload")
        assert not spool.put("a", b"payload")
        assert spool.count == 1
        assert "a" in spool


def test_durable_across_reopen(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory, 1000) as spool:
        spool.put("a", b"first")
        spool.put("b", b"second")
        spool.put("c", b"third")
        spool.ack("a")
    with Spool(directory, 1000) as spool:
        assert spool.count == 2
        assert spool.size_bytes == len(b"second") + len(b"third")
        spool.put("d", b"fourth")  # numbered after what is already there
    with Spool(directory, 1000) as spool:
        assert drain(spool) == [("b", b"second"), ("c", b"third"), ("d", b"fourth")]


def test_bound_drops_the_oldest_and_reports_each(tmp_path: Path) -> None:
    dropped: list[tuple[str, int]] = []
    with Spool(tmp_path / "spool", 100, on_drop=lambda b, n: dropped.append((b, n))) as spool:
        spool.put("a", b"a" * 40)
        spool.put("b", b"b" * 40)
        spool.put("c", b"c" * 10)
        assert dropped == []
        spool.put("d", b"d" * 60)  # 150 bytes, then 110, do not fit: a, then b, must go
        assert dropped == [("a", 40), ("b", 40)]
        assert spool.dropped_batches == 2
        assert spool.dropped_bytes == 80
        assert spool.size_bytes == 70
        assert spool.size_bytes <= spool.max_bytes
        spool.put("e", b"e" * 30)  # exactly full is allowed
        assert spool.dropped_batches == 2
        assert [b for b, _ in drain(spool)] == ["c", "d", "e"]
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == [".lock"]


def test_a_batch_larger_than_the_spool_is_refused(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool", 10) as spool:
        spool.put("a", b"a" * 5)
        with pytest.raises(UsageError, match="more than the whole spool"):
            spool.put("big", b"x" * 11)
        assert spool.count == 1


def test_a_lowered_bound_is_enforced_on_open(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory, 100) as spool:
        for name in "abc":
            spool.put(name, b"x" * 30)
    dropped: list[str] = []
    with Spool(directory, 50, on_drop=lambda b, n: dropped.append(b)) as spool:
        assert dropped == ["a", "b"]
        assert spool.count == 1


def test_near_full_above_80_percent(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool", 100) as spool:
        spool.put("a", b"x" * 80)
        assert not spool.near_full  # exactly 80 % is not above it
        spool.put("b", b"x")
        assert spool.near_full
        spool.ack("a")
        assert not spool.near_full


def test_tmp_leftovers_are_removed_on_open(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory, 1000) as spool:
        spool.put("a", b"kept")
    leftover = directory / "00000000000000000001-b.batch.tmp"
    leftover.write_bytes(b"half a batch")
    stranger = directory / "README"
    stranger.write_bytes(b"not ours")
    with Spool(directory, 1000) as spool:
        assert not leftover.exists()
        assert stranger.exists()  # files the spool did not write are left alone
        assert spool.count == 1
        assert spool.size_bytes == len(b"kept")
        assert drain(spool) == [("a", b"kept")]


def test_a_batch_deleted_behind_the_spools_back_is_skipped(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory, 100) as spool:
        spool.put("a", b"1")
        spool.put("b", b"2")
        next(directory.glob("*-a.batch")).unlink()
        assert spool.peek() == ("b", b"2")
        assert spool.count == 1


def test_batch_files_are_private_and_complete(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory, 1000) as spool:
        spool.put("host-1:42", b"payload")
    (path,) = directory.glob("*.batch")
    assert path.read_bytes() == b"payload"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert not list(directory.glob("*.tmp"))


def test_bad_batch_ids_are_refused(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool", 100) as spool:
        for bad in ("", "../escape", "a/b", "x" * 101, "sp ace"):
            with pytest.raises(ValidationError):
                spool.put(bad, b"x")
        assert spool.count == 0


def test_one_user_at_a_time(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory, 100), pytest.raises(ConflictError, match="in use"):
        Spool(directory, 100)
    with Spool(directory, 100) as spool:  # free again once closed
        assert spool.count == 0


def test_max_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        Spool(tmp_path / "spool", 0)


def test_put_and_ack_fsync_the_file_and_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[bool] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}"))
        real(fd)

    with Spool(tmp_path / "spool", 100) as spool:
        monkeypatch.setattr(os, "fsync", fsync)
        spool.put("a", b"payload")
        assert synced == [False, True]  # the batch, then the directory after the rename
        spool.ack("a")
        assert synced == [False, True, True]
