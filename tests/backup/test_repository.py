"""The repository without PostgreSQL: atomic writes, the catalog, integrity, retention."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.backup import wal
from garrison.backup.catalog import Catalog, verify
from garrison.backup.repo import BaseEntry, Repository, iso
from garrison.backup.restore import Target, choose_base
from garrison.backup.retention import expire, plan
from garrison.backup.seal import BackupError, key_facts, opener, seal
from garrison.core.errors import UsageError
from tests.backup.helpers import gpg_keys, s3_server
from tests.cli import garrison

DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return gpg_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    with s3_server() as env:
        yield env


@pytest.fixture(params=["directory", "s3"])
def repo(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    keys: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> Repository:
    """A repository in a directory, and one in a bucket (each test runs with both)."""
    if request.param == "directory":
        return Repository.init(tmp_path / "repo", keys[0], T0)
    for name, value in request.getfixturevalue("s3").items():
        monkeypatch.setenv(name, value)
    return Repository.init(f"s3://backups/{tmp_path.name}", keys[0], T0)


def _segment(tmp_path: Path, number: int, timeline: int = 1) -> tuple[str, Path]:
    name = wal.segment_name(timeline, number)
    path = tmp_path / name
    path.write_bytes(name.encode() * 1000)
    return name, path


def _object(repo: Repository, name: str) -> str:
    entry = repo.wal_entry(name)
    assert entry is not None
    return entry.object


def _archive(repo: Repository, tmp_path: Path, number: int, when: dt.datetime) -> str:
    name, path = _segment(tmp_path, number)
    repo.put_wal(name, path, when)
    return name


def _base(repo: Repository, start: int, stop: int, when: dt.datetime) -> BaseEntry:
    backup_id = repo.new_base_id(when)
    with repo.sealing_base(backup_id) as out:
        sealed = seal(io.BytesIO(b"not really a tar"), out, repo.public_key)
    entry = BaseEntry(
        id=backup_id, started_at=iso(when - dt.timedelta(minutes=5)), finished_at=iso(when),
        timeline=1, start_lsn=wal.format_lsn(start * wal.SEGMENT_BYTES + 40),
        stop_lsn=wal.format_lsn(stop * wal.SEGMENT_BYTES + 200),
        start_wal=wal.segment_name(1, start),
        size=sealed.size, sha256=sealed.sha256, plain_size=sealed.plain_size,
        plain_sha256=sealed.plain_sha256,
    )  # fmt: skip
    repo.put_base(entry)
    return entry


def test_sealed_files_open_with_the_private_key_only(
    repo: Repository, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    name = _archive(repo, tmp_path, 7, T0)
    sealed_in = _object(repo, name)
    with opener(keys[1]) as keyring, repo.open_sealed(sealed_in) as sealed:
        plain = io.BytesIO()
        keyring.open(sealed, plain, name)
    assert plain.getvalue() == name.encode() * 1000
    _, other = gpg_keys(tmp_path / "other")
    with (
        opener(other) as wrong,
        repo.open_sealed(sealed_in) as sealed,
        pytest.raises(BackupError, match="not the backup key"),
    ):
        wrong.open(sealed, io.BytesIO(), name)


def test_the_same_file_again_is_accepted_other_contents_refused(
    repo: Repository, tmp_path: Path
) -> None:
    name, path = _segment(tmp_path, 3)
    assert repo.put_wal(name, path, T0)[1] is True
    assert repo.put_wal(name, path, T0 + DAY)[1] is False  # PostgreSQL retried after a crash
    path.write_bytes(b"something else")
    with pytest.raises(BackupError, match="already archived with other contents"):
        repo.put_wal(name, path, T0)


def test_window_and_gaps(repo: Repository, tmp_path: Path) -> None:
    assert Catalog.read(repo).window() is None
    _base(repo, 2, 2, T0)
    for n in range(2, 6):
        _archive(repo, tmp_path, n, T0 + n * dt.timedelta(minutes=5))
    _archive(repo, tmp_path, 8, T0 + dt.timedelta(hours=1))  # 6 and 7 are missing
    catalog = Catalog.read(repo)
    assert catalog.window() == (T0, T0 + 5 * dt.timedelta(minutes=5))
    assert [(g.first, g.last) for g in catalog.gaps()] == [
        (wal.segment_name(1, 6), wal.segment_name(1, 7))
    ]


def test_damaged_and_missing_files_are_found(repo: Repository, tmp_path: Path) -> None:
    _base(repo, 1, 1, T0)
    names = [_archive(repo, tmp_path, n, T0) for n in (1, 2, 3)]
    damaged, lost = _object(repo, names[0]), _object(repo, names[1])
    sealed = bytearray(repo.storage.get(damaged) or b"")
    sealed[100:104] = b"\0\0\0\0"  # the same size, other bytes
    repo.storage.put(damaged, bytes(sealed))
    repo.storage.delete(lost)
    found = {d.key: d.reason for d in verify(repo, Catalog.read(repo))}
    assert found == {damaged: "its SHA-256 is not the one written", lost: "missing"}
    checked = garrison("db", "check", "--repo", repo.location)
    assert checked.returncode == 1
    assert "damaged:" in checked.stdout


def test_an_archiver_killed_mid_write_leaves_nothing_that_counts(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    """In a directory (an upload to S3 cut short never becomes an object at all)."""
    repo = Repository.init(tmp_path / "repo", keys[0], T0)
    name = wal.segment_name(1, 9)
    big = tmp_path / name
    with big.open("wb") as fh:
        fh.write(os.urandom(wal.SEGMENT_BYTES))
    folder = tmp_path / "repo" / "wal" / name[:8]
    argv = [sys.executable, "-m", "garrison", "db", "archive-wal", "--repo", repo.location]
    archiver = subprocess.Popen([*argv, str(big), name])
    deadline = time.monotonic() + 30
    while not list(folder.glob(".tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.005)  # until it is writing
    os.kill(archiver.pid, signal.SIGKILL)
    archiver.wait()
    assert repo.wal_entry(name) is None
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".tmp-")] == []
    assert Catalog.read(repo).wal == {}
    assert [key.rsplit("/", 1)[-1].startswith(".tmp-") for key in repo.loose()] == [True]
    again = garrison("db", "archive-wal", "--repo", repo.location, str(big), name)
    assert again.returncode == 0, again.stderr  # PostgreSQL's retry
    assert repo.wal_entry(name) is not None


def test_retention_over_forty_days_keeps_every_point_of_the_last_thirty(
    repo: Repository, tmp_path: Path
) -> None:
    """A base backup every day at midnight with 4 segments a day (6 h apart)."""
    for day in range(40):
        _base(repo, day * 4, day * 4, T0 + day * DAY)
        for k in range(4):
            _archive(repo, tmp_path, day * 4 + k, T0 + day * DAY + k * dt.timedelta(hours=6))
    now = T0 + 39 * DAY + dt.timedelta(hours=20)
    todo = plan(Catalog.read(repo), now, 30 * DAY)
    assert todo.anchor is not None
    assert todo.anchor.finished_at == iso(T0 + 9 * DAY)  # the newest finished by now - 30 days
    assert len(todo.bases) == 9
    assert todo.wal == [wal.segment_name(1, n) for n in range(36)]
    expire(repo, now, 30 * DAY)
    catalog = Catalog.read(repo)
    assert len(catalog.bases) == 31
    assert catalog.gaps() == []
    earliest, latest = catalog.window()  # type: ignore[misc]
    assert earliest <= now - 30 * DAY
    assert latest == T0 + 39 * DAY + dt.timedelta(hours=18)
    assert expire(repo, now, 30 * DAY).bases == []  # nothing more to do


def test_a_swapped_public_key_is_refused(
    repo: Repository, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    """Whoever may write the repository must not be able to make it encrypt to their key."""
    intruder, _ = gpg_keys(tmp_path / "intruder")
    repo.storage.put("backup-key.asc", intruder.read_bytes())
    name, path = _segment(tmp_path, 11)
    with pytest.raises(BackupError, match="nothing is encrypted to it"):
        Repository(repo.location).put_wal(name, path, T0)
    # and when the description is rewritten too, the pin (archive_command's) still holds
    made = json.loads(repo.storage.get("garrison-repo.json") or b"{}")
    made["fingerprint"] = key_facts(intruder)[0]
    repo.storage.put("garrison-repo.json", json.dumps(made).encode())
    pinned = key_facts(keys[0])[0]
    with pytest.raises(BackupError, match="pinned"):
        Repository(repo.location, fingerprint=pinned).put_wal(name, path, T0)
    assert repo.wal_entry(name) is None


def test_a_hole_in_the_window_is_not_restorable(repo: Repository, tmp_path: Path) -> None:
    """A gap after one base backup leaves a hole until the next base backup."""
    minutes = dt.timedelta(minutes=5)
    _base(repo, 2, 2, T0)
    for n in (2, 3):
        _archive(repo, tmp_path, n, T0 + n * minutes)
    later = _base(repo, 8, 8, T0 + dt.timedelta(hours=1))
    for n in (8, 9):
        _archive(repo, tmp_path, n, T0 + dt.timedelta(hours=1) + (n - 7) * minutes)
    catalog = Catalog.read(repo)
    assert catalog.base_for(T0 + 2 * minutes) is not None
    assert catalog.base_for(T0 + dt.timedelta(minutes=30)) is None  # after the gap at 4
    assert catalog.base_for(T0 + dt.timedelta(hours=1, minutes=7)) == later
    with pytest.raises(UsageError, match="outside the recoverable window"):
        choose_base(catalog, Target(time=T0 + dt.timedelta(minutes=30)))
    assert choose_base(catalog, Target(name="before-migration")) == later  # the one reaching now


def test_two_writers_of_one_wal_file_never_mix(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streamer and archive_command may seal the same segment at once: each writes an
    object of its own, the entry names one of them, and the other is left loose (swept)."""
    name, path = _segment(tmp_path, 21)
    first, _ = repo.put_wal(name, path, T0)
    monkeypatch.setattr(repo, "wal_entry", lambda _name: None)  # the second saw no entry yet
    second, _ = repo.put_wal(name, path, T0)
    monkeypatch.undo()
    assert first.object != second.object
    assert repo.wal_entry(name) == second
    assert verify(repo, Catalog.read(repo)) == []
    assert first.object in repo.loose()
