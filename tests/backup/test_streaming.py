"""Continuous WAL streaming: a commit reaches the repository within seconds, without a WAL
switch, and survives the loss of the database host."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

from garrison.backup.repo import Repository, iso
from garrison.backup.stream import Streamer
from tests.backup.helpers import Cluster, as_postgres, cluster, gpg_keys, owned, workspace
from tests.cli import garrison


def _set_up(work: Path, db: Cluster) -> tuple[Path, Path]:
    public, private = gpg_keys(work)
    repo = work / "repo"
    assert garrison("db", "init-repo", "--repo", str(repo), "--public-key", str(public),
                    data_dir=work / "g").returncode == 0  # fmt: skip
    owned(repo)
    configured = garrison(
        "db", "configure", "--pgdata", str(db.pgdata), "--repo", str(repo),
        "--streaming", "1GB", data_dir=work / "g",
    )  # fmt: skip
    assert configured.returncode == 0, configured.stderr
    assert "max_slot_wal_keep_size = '1GB'" in configured.stdout
    return repo, private


def _sealed_after_commit(db: Cluster, repo: Repository) -> float:
    """Seconds from now (just after a commit) until the repository holds a part of the
    streamed segment sealed after the streamer had flushed that commit."""
    began = time.monotonic()
    commit = db.sql("SELECT pg_current_wal_lsn()")
    flushed_at = ""
    while time.monotonic() - began < 30:
        if not flushed_at:
            flushed = f"coalesce(bool_or(flush_lsn >= '{commit}'), false)"  # the server's own LSN
            query = f"SELECT {flushed} FROM pg_stat_replication"  # noqa: S608  # no outside input
            if db.sql(query) == "t":
                flushed_at = iso(dt.datetime.now(dt.UTC))
        else:
            parts = [e for e in repo.wal_entries() if e.name.endswith(".partial")]
            if parts and parts[-1].archived_at > flushed_at:
                return time.monotonic() - began
        time.sleep(0.05)
    raise AssertionError("the commit never reached the repository")


def test_a_commit_is_in_the_repository_within_seconds_and_restorable_after_a_crash() -> None:
    with workspace() as work, cluster(work) as db:
        repo, private = _set_up(work, db)
        db.start()
        db.sql("CREATE TABLE orders (id int PRIMARY KEY)")
        backup = garrison("db", "backup", "--repo", str(repo), "--host", db.host,
                          "--port", str(db.port), data_dir=work / "g")  # fmt: skip
        assert backup.returncode == 0, backup.stderr
        streamer = Streamer(
            repo=Repository(repo), spool=owned(work / "spool"), host=db.host, port=db.port,
            user="postgres", slot="garrison", os_user="postgres", partial_every=0.5,
        )  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=streamer.run, args=(stop,))
        thread.start()
        try:
            db.sql("INSERT INTO orders VALUES (42)")
            assert _sealed_after_commit(db, Repository(repo)) < 30
        finally:
            stop.set()
            thread.join(30)
        # The database host is lost: nothing more is archived or streamed.
        as_postgres(
            ["/usr/lib/postgresql/15/bin/pg_ctl", "-D", str(db.pgdata), "-m", "immediate", "stop"]
        )
        target = work / "restored"
        done = garrison(
            "db", "restore", "--repo", str(repo), "--private-key", str(private), "--latest",
            "--target", str(target), data_dir=work / "g",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        restored = Cluster(target, db.port + 1)
        restored.start()
        try:
            assert restored.sql("SELECT id FROM orders") == "42"
        finally:
            restored.stop()
