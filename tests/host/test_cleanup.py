"""Disk-full remediation on a real loop-mounted ext4 file system: the declared cleanup frees
space through the alert's runbook; nothing outside the declared paths is touched, nor a
database's data put under a declared one."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.errors import ConfigError
from garrison.host import config
from garrison.host.alerts import AlertRule
from garrison.host.cleanup import Cleanup, refuse_protected
from garrison.host.guard import Limits
from garrison.host.metrics import Sampler
from garrison.host.monitor import HostMonitor, Runbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB ext4 file system mounted from a file."""
    image, mount = tmp_path / "disk.img", tmp_path / "mnt"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(32 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(image)], check=True)
    done = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mount)], check=False, capture_output=True, text=True
    )
    if done.returncode:
        pytest.skip(f"cannot loop-mount here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


LINE = b"GET /index.html 200 1234 Mozilla/5.0\n"


def _fill(path: Path, mib: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))


def _fill_log_to(path: Path, mount: Path, percent: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        while _used(mount) < percent:
            f.write(LINE * 28000)
            f.flush()
            os.fsync(f.fileno())


def _used(mount: Path) -> float:
    usage = shutil.disk_usage(mount)
    return 100 * usage.used / usage.total


def test_disk_full_cleanup_frees_declared_paths_only(volume: Path, tmp_path: Path) -> None:
    logs, cache = volume / "app" / "log", volume / "app" / "cache"
    _fill(cache / "thumbs" / "a.bin", 6)
    _fill(cache / "b.bin", 4)
    precious = volume / "data" / "orders.db"
    _fill(precious, 4)
    _fill_log_to(logs / "access.log", volume, 88)
    keep_log = logs / "audit.trail"  # in the folder, not matched by the pattern
    keep_log.write_text("kept\n")
    database = cache / "pg"  # a database someone put under the cache: left alone
    (database / "pg_wal").mkdir(parents=True)
    (database / "PG_VERSION").write_text("15\n")
    before = _used(volume)
    assert before > 85
    cleanup = Cleanup(rotate=(f"{logs}/*.log",), clear=(str(cache),))
    rule = AlertRule(
        "disk-high", "disk_used_percent", ">", 80, 0, 7.0, mount=str(volume),
        remediation=Runbook(cleanup, Limits(budget=2, backoff_s=0), grace_s=0.2),
    )  # fmt: skip
    monitor = HostMonitor([], (rule,), tmp_path / "state", metrics_every=0.2, sampler=Sampler())
    seen = []
    deadline = time.monotonic() + 20
    while "succeeded" not in [e.get("outcome") for _, e in seen]:
        assert time.monotonic() < deadline, seen
        seen += monitor.tick()
        time.sleep(0.05)
    alerts = [e for _, e in seen if e["class"] == "host_alert"]
    assert alerts[0]["state"] == "firing"
    assert alerts[0]["instance"] == str(volume)
    steps = [e for _, e in seen if e["class"] == "remediation_activity"]
    assert [s["outcome"] for s in steps] == ["acted", "succeeded"]
    assert "freed" in steps[0]["detail"]
    assert "pg: a database's or Garrison's data, left alone" in steps[0]["detail"]
    assert _used(volume) < 50
    assert precious.stat().st_size == 4 << 20
    assert keep_log.read_text() == "kept\n"
    assert (database / "PG_VERSION").exists()
    assert (database / "pg_wal").is_dir()
    assert not (cache / "b.bin").exists()
    assert not (cache / "thumbs").exists()
    assert (logs / "access.log").stat().st_size == 0, "truncated in place (the writer's fd holds)"
    (rotated,) = logs.glob("access.log.*.gz")
    with gzip.open(rotated) as f:
        assert f.read(len(LINE)) == LINE
    assert [e["state"] for e in alerts] == ["firing", "resolved"]


def test_rotation_keeps_the_newest(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    for stamp in ("20260101T000000000000", "20260102T000000000000", "20260103T000000000000"):
        (tmp_path / f"app.log.{stamp}.gz").write_bytes(b"x" * 100)
    log.write_text("line\n" * 1000)
    outcome = Cleanup(rotate=(str(log),), keep=2).run()
    assert outcome.ok, outcome.detail
    oldest = sorted(p.name for p in tmp_path.glob("app.log.*.gz"))[0]
    assert oldest == "app.log.20260103T000000000000.gz"
    assert len(list(tmp_path.glob("app.log.*.gz"))) == 2


@pytest.mark.parametrize(
    "path", ["/var/lib/postgresql/15/main", "/etc/nginx", "/", "/var/lib", "/usr/share"]
)
def test_protected_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match=r"never touch|holds"):
        refuse_protected(Path(path))


def test_garrison_data_and_database_dirs_refused(tmp_path: Path) -> None:
    data = tmp_path / "garrison-data"
    (data / "logstore").mkdir(parents=True)
    with pytest.raises(ValueError, match="never touch"):
        Cleanup(clear=(str(data / "logstore"),), protected=(data,))
    pg = tmp_path / "pg"
    pg.mkdir()
    (pg / "PG_VERSION").write_text("15")
    with pytest.raises(ValueError, match="database"):
        Cleanup(clear=(str(pg),))
    health = tmp_path / "health.yml"
    health.write_text(
        "alerts:\n  - name: disk-high\n    remediation:\n"
        f"      cleanup: {{clear: [{data}/logstore]}}\n"
    )
    with pytest.raises(ConfigError, match=r"alerts\[0\].*never touch"):
        config.load(health, protected=[data])


@pytest.mark.parametrize("pattern", ["/e*/passwd", "/*/shadow", "/var/lib/garris?n/*", "app/*.log"])
def test_wildcards_only_in_the_file_name(pattern: str) -> None:
    with pytest.raises(ValueError, match="wildcards only in its file name"):
        Cleanup(rotate=(pattern,))


def test_database_data_found_above_or_beside(tmp_path: Path) -> None:
    pgdata = tmp_path / "pgdata"
    (pgdata / "base").mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("15\n")
    with pytest.raises(ValueError, match="database"):
        Cleanup(clear=(str(pgdata / "base"),))
    wal = tmp_path / "wal"  # initdb --waldir: segments and archive_status, no PG_VERSION
    (wal / "archive_status").mkdir(parents=True)
    (wal / "000000010000000000000001").write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match="database"):
        Cleanup(clear=(str(wal),))


def test_links_are_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "junk.bin").write_bytes(b"x" * 1000)
    (cache / "to-victim").symlink_to(victim)
    (cache / "file-link").symlink_to(victim / "keep.txt")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").symlink_to(victim / "keep.txt")
    outcome = Cleanup(rotate=(f"{logs}/*.log",), clear=(str(cache),)).run()
    assert outcome.ok, outcome.detail
    assert (victim / "keep.txt").read_text() == "precious\n"
    assert not list(cache.iterdir()), "the links themselves are gone, their targets stay"
    assert not list(logs.glob("*.gz"))
    # The declared directory itself swapped for a link after it was declared: refused.
    declared = Cleanup(clear=(str(cache),))
    shutil.rmtree(cache)
    cache.symlink_to(victim)
    outcome = declared.run()
    assert not outcome.ok
    assert "symbolic link" in outcome.detail
    assert (victim / "keep.txt").read_text() == "precious\n"


def test_rotations_never_overwrite_each_other(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    cleanup = Cleanup(rotate=(str(log),), keep=5)
    for n in range(3):
        log.write_text(f"run {n}\n" * 100)
        log.chmod(0o640)
        assert cleanup.run().ok
    rotated = sorted(tmp_path.glob("app.log.*.gz"))
    assert len(rotated) == 3
    assert [gzip.decompress(p.read_bytes()).decode().split("\n")[0] for p in rotated] == [
        "run 0", "run 1", "run 2"
    ]  # fmt: skip
    assert {p.stat().st_mode & 0o777 for p in rotated} == {0o640}


def test_hard_linked_logs_are_not_rotated(tmp_path: Path) -> None:
    other = tmp_path / "passwd"
    other.write_text("root:x:0:0::/root:/bin/sh\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    os.link(other, logs / "app.log")
    outcome = Cleanup(rotate=(f"{logs}/*.log",)).run()
    assert not outcome.ok
    assert "2 hard links; not rotated" in outcome.detail
    assert other.read_text() == "root:x:0:0::/root:/bin/sh\n"
    assert not list(logs.glob("*.gz"))


def test_what_rotation_will_not_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from garrison.host import cleanup  # noqa: PLC0415

    logs = tmp_path / "logs"
    logs.mkdir()
    os.mkfifo(logs / "pipe.log")
    with (logs / "sparse.log").open("wb") as f:
        f.truncate(1 << 30)
    (logs / "app.log").write_text("line\n" * 100)
    (logs / "app.log.zz-junk.gz").write_bytes(b"planted")  # not a rotation: never pruned
    outcome = Cleanup(rotate=(f"{logs}/*.log",), keep=1).run()
    assert "sparse.log: sparse" in outcome.detail
    assert (logs / "app.log.zz-junk.gz").read_bytes() == b"planted"
    (rotated,) = logs.glob("app.log.2*.gz")
    assert gzip.decompress(rotated.read_bytes()) == b"line\n" * 100, "keep=1 keeps the new one"
    assert (logs / "pipe.log").exists()
    flag = tmp_path / "protected_hardlinks"
    flag.write_text("0\n")
    monkeypatch.setattr(cleanup, "PROTECTED_HARDLINKS", flag)
    (logs / "app.log").write_text("more\n")
    outcome = Cleanup(rotate=(f"{logs}/app.log",)).run()
    assert not outcome.ok
    assert "fs.protected_hardlinks is off" in outcome.detail
    assert (logs / "app.log").read_text() == "more\n"


@pytest.mark.parametrize("path", ["/home", "/var/log", "/tmp", "/var/cache", "/opt"])  # noqa: S108
def test_whole_top_directories_are_never_cleared(path: str) -> None:
    with pytest.raises(ValueError, match="never empties"):
        Cleanup(clear=(path,))


def test_keep_at_least_one() -> None:
    with pytest.raises(ValueError, match="keep is at least 1"):
        Cleanup(rotate=("/var/log/app/*.log",), keep=0)


def test_a_bind_mount_inside_is_left_alone(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.bin").write_bytes(b"x" * 100)
    cache = tmp_path / "cache"
    (cache / "vol").mkdir(parents=True)
    (cache / "junk").write_bytes(b"y" * 100)
    done = subprocess.run(
        ["mount", "--bind", str(outside), str(cache / "vol")],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
    try:
        outcome = Cleanup(clear=(str(cache),)).run()
    finally:
        subprocess.run(["umount", str(cache / "vol")], check=True)
    assert outcome.ok, outcome.detail
    assert (outside / "data.bin").read_bytes() == b"x" * 100
    assert not (cache / "junk").exists()


def test_a_failed_rotation_leaves_no_partial_copy(volume: Path) -> None:
    logs = volume / "logs"
    logs.mkdir()
    log = logs / "app.log"
    with log.open("wb") as f:  # incompressible, bigger than the space left
        while shutil.disk_usage(volume).free > 2 << 20:
            f.write(os.urandom(1 << 20))
    outcome = Cleanup(rotate=(str(log),)).run()
    assert not outcome.ok
    assert "No space left" in outcome.detail
    assert not list(logs.glob("*.gz")), "the partial copy is removed"
    assert log.stat().st_size > 0, "nothing truncated"
