"""Point-in-time recovery end to end with PostgreSQL 15: archive, base backup, restore."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from garrison.backup.repo import Repository
from garrison.backup.role import BackupRole
from tests.backup.helpers import Cluster, as_postgres, cluster, gpg_keys, owned, workspace
from tests.cli import garrison


@dataclass
class World:
    work: Path
    db: Cluster
    repo: Path
    public: Path
    private: Path


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with workspace() as work, cluster(work) as db:
        public, private = gpg_keys(work)
        repo = work / "repo"
        made = garrison(
            "db", "init-repo", "--repo", str(repo), "--public-key", str(public), data_dir=work / "g"
        )
        assert made.returncode == 0, made.stderr
        owned(repo)
        subprocess.run(["chown", "-R", "postgres:postgres", str(repo)], check=True)
        configured = garrison(
            "db", "configure", "--pgdata", str(db.pgdata), "--repo", str(repo), data_dir=work / "g"
        )
        assert configured.returncode == 0, configured.stderr
        assert "archive_command = " in configured.stdout
        db.start()
        db.sql("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        db.sql("INSERT INTO notes VALUES (1, 'before the backup')")
        backup = garrison(
            "db", "backup", "--pgdata", str(db.pgdata), "--port", str(db.port), "--host", db.host,
            "--repo", str(repo), data_dir=work / "g",
        )  # fmt: skip
        assert backup.returncode == 0, backup.stderr + db.log
        yield World(work, db, repo, public, private)


def _restored_rows(world: World, target: Path) -> list[str]:
    restored = Cluster(target, world.db.port + 1)
    restored.start()  # plain pg_ctl: no Garrison process involved
    try:
        return restored.sql("SELECT id || ':' || body FROM notes ORDER BY id").splitlines()
    finally:
        restored.stop()


def test_restore_to_a_time_between_two_transactions(world: World) -> None:
    db = world.db
    db.sql("INSERT INTO notes VALUES (2, 'first transaction')")
    db.sql("SELECT pg_sleep(1.1)")
    between = db.sql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    )
    db.sql("SELECT pg_sleep(1.1)")
    db.sql("INSERT INTO notes VALUES (3, 'second transaction')")
    db.wait_archived()
    target = world.work / "restored"
    done = garrison(
        "db", "restore", "--repo", str(world.repo), "--private-key", str(world.private),
        "--to", between, "--target", str(target), data_dir=world.work / "g",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"^recovered_to_time: \S", done.stdout, re.MULTILINE), done.stdout
    assert "recovered_lsn: " in done.stdout
    assert _restored_rows(world, target) == ["1:before the backup", "2:first transaction"]
    assert not (target / "recovery.signal").exists()
    assert "restore_command" not in (target / "postgresql.auto.conf").read_text()


def test_the_repository_holds_only_openpgp_messages_and_no_secret(world: World) -> None:
    sealed = sorted(world.repo.rglob("*.zst.gpg"))
    assert any("base" in p.parts for p in sealed)
    assert any("wal" in p.parts for p in sealed)
    packets = subprocess.run(
        ["gpg", "--batch", "--list-packets", str(sealed[0])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ":pubkey enc packet:" in packets.stdout + packets.stderr
    # The database host's side never had a keyring with a secret key in it.
    listed = as_postgres(["gpg", "--batch", "--list-secret-keys"])
    assert "sec" not in listed.stdout


def test_check_reports_the_window(world: World) -> None:
    checked = garrison(
        "db",
        "check",
        "--repo",
        str(world.repo),
        "--host",
        world.db.host,
        "--port",
        str(world.db.port),
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(r"^recoverable_from: 20\d\d-", checked.stdout, re.MULTILINE)
    assert re.search(r"^recoverable_to: 20\d\d-", checked.stdout, re.MULTILINE)
    assert "failed_since_last_archived: no" in checked.stdout


def test_refusals_say_what_is_wrong(world: World) -> None:
    _, other_private = gpg_keys(owned(world.work / "other"))
    wrong_key = garrison(
        "db", "restore", "--repo", str(world.repo), "--private-key", str(other_private),
        "--latest", "--target", str(world.work / "never"), data_dir=world.work / "g",
    )  # fmt: skip
    assert wrong_key.returncode != 0
    assert "not the backup key" in wrong_key.stderr
    too_early = garrison(
        "db", "restore", "--repo", str(world.repo), "--private-key", str(world.private),
        "--to", "2001-01-01T00:00:00Z", "--target", str(world.work / "never"),
        data_dir=world.work / "g",
    )  # fmt: skip
    assert too_early.returncode != 0
    assert "outside the recoverable window" in too_early.stderr
    secret_as_public = garrison(
        "db", "init-repo", "--repo", str(world.work / "repo2"), "--public-key", str(world.private),
        data_dir=world.work / "g",
    )  # fmt: skip
    assert secret_as_public.returncode != 0
    assert "public key only" in secret_as_public.stderr


def test_drills_restore_a_random_point_and_a_failed_one_is_a_finding(world: World) -> None:
    events = world.work / "backup-events.jsonl"
    scratch = owned(world.work / "scratch")
    drill = [
        "db", "drill", "--repo", str(world.repo), "--private-key", str(world.private),
        "--scratch", str(scratch), "--events", str(events),
    ]  # fmt: skip
    passed = garrison(*drill, "--sql", "SELECT count(*) > 0 FROM notes", data_dir=world.work / "g")
    assert passed.returncode == 0, passed.stderr
    assert "and checked it" in passed.stdout
    failed = garrison(
        *drill, "--sql", "SELECT count(*) > 100 FROM notes", data_dir=world.work / "g"
    )
    assert failed.returncode == 1
    assert "the SQL check says 'f', not true" in failed.stderr
    assert list(scratch.iterdir()) == []  # every copy removed
    outcomes = [json.loads(line)["outcome"] for line in events.read_text().splitlines()]
    assert outcomes == ["success", "failure"]
    replay = garrison("detect", "replay", str(events), "--format", "jsonl")
    assert replay.returncode == 0, replay.stderr
    assert "GarrisonRestoreDrillFailed" in replay.stdout


def test_the_backup_role_backs_up_when_due_then_checks(world: World) -> None:
    events = world.work / "role-events.jsonl"
    role = BackupRole(
        repo=Repository(world.repo), host=world.db.host, port=world.db.port, user="postgres",
        os_user="postgres", pgdata=world.db.pgdata, keep=dt.timedelta(days=30),
        backup_every=dt.timedelta(0), check_every=dt.timedelta(minutes=5), events=events,
    )  # fmt: skip
    before = len(Repository(world.repo).bases())
    role.step()
    assert len(Repository(world.repo).bases()) == before + 1
    done = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["activity"], e["outcome"]) for e in done] == [
        ("base_backup", "success"), ("expire", "success"), ("check", "success"),
    ]  # fmt: skip
    check = done[-1]
    assert check["recoverable_from"] <= check["recoverable_to"]
    assert check["data_dir_encrypted"] is False  # this VM's disk is not dm-crypt
    assert check["data_dir_devices"]
    assert check["archiver"]["failed_since_last_archived"] == "no"
