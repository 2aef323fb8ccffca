"""Retention over 40 simulated days with PostgreSQL: what falls out of the window is expired,
and a sample of points inside it is restored.

A base backup and rows are made in real time; the catalog's times are then moved onto a
40-day calendar (a base backup every 10 days), which is what retention reads. The points
restored are the LSNs after each day's row, which do not depend on the calendar.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from garrison.backup.catalog import Catalog
from garrison.backup.repo import ENTRY, REPO_FILE, Repository, iso, parse_iso
from garrison.backup.retention import expire
from tests.backup.helpers import Cluster, cluster, gpg_keys, owned, workspace
from tests.cli import garrison

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
DAYS = 10  # simulated days between base backups


def _calendar(repo: Repository, marks: list[dt.datetime]) -> None:
    """Move every catalog time in [marks[d], marks[d+1]) onto day d * DAYS of the calendar."""

    def moved(text: str) -> str:
        real = parse_iso(text)
        step = max(d for d, mark in enumerate(marks) if mark <= real) if real >= marks[0] else 0
        return iso(T0 + dt.timedelta(days=step * DAYS) + (real - marks[step]))

    for key in repo.storage.keys(""):
        if not key.endswith(ENTRY) or key == REPO_FILE:
            continue
        entry = json.loads(repo.storage.get(key) or b"{}")
        for field in ("archived_at", "started_at", "finished_at"):
            if field in entry:
                entry[field] = moved(entry[field])
        repo.storage.put(key, json.dumps(entry).encode())


def _rows_at(work: Path, repo: Path, private: Path, lsn: str, port: int) -> list[str]:
    target = work / f"restored-{lsn.replace('/', '-')}"
    done = garrison(
        "db", "restore", "--repo", str(repo), "--private-key", str(private), "--lsn", lsn,
        "--target", str(target), data_dir=work / "g",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    copy = Cluster(target, port)
    copy.start()
    try:
        return copy.sql("SELECT day FROM days ORDER BY day").splitlines()
    finally:
        copy.stop()


def test_forty_days_of_backups_expire_to_thirty_and_the_rest_restores() -> None:
    with workspace() as work, cluster(work) as db:
        public, private = gpg_keys(work)
        repo_dir = work / "repo"
        garrison(
            "db",
            "init-repo",
            "--repo",
            str(repo_dir),
            "--public-key",
            str(public),
            data_dir=work / "g",
        )
        owned(repo_dir)
        garrison(
            "db",
            "configure",
            "--pgdata",
            str(db.pgdata),
            "--repo",
            str(repo_dir),
            data_dir=work / "g",
        )
        db.start()
        db.sql("CREATE TABLE days (day int)")
        marks, after_row = [], {}
        for day in range(5):  # simulated days 0, 10, 20, 30, 40
            marks.append(dt.datetime.now(dt.UTC))
            backup = garrison("db", "backup", "--repo", str(repo_dir), "--host", db.host,
                              "--port", str(db.port), data_dir=work / "g")  # fmt: skip
            assert backup.returncode == 0, backup.stderr
            db.sql(f"INSERT INTO days VALUES ({day * DAYS:d})")  # noqa: S608  # an int
            after_row[day] = db.sql("SELECT pg_current_wal_insert_lsn()")
            db.wait_archived()
        repo = Repository(repo_dir)
        _calendar(repo, marks)
        bases = repo.bases()
        now = T0 + dt.timedelta(days=41)
        done = expire(repo, now, dt.timedelta(days=30))
        # the newest base backup finished by day 11 is day 10's: day 0's goes, with its WAL
        assert done.anchor is not None
        assert done.anchor.id == bases[1].id
        assert done.bases == [bases[0].id]
        assert done.wal
        assert all(name[:24] < bases[1].start_wal for name in done.wal)
        catalog = Catalog.read(Repository(repo_dir))
        assert [b.id for b in catalog.bases] == [b.id for b in bases[1:]]
        assert catalog.gaps() == []
        earliest, _ = catalog.window()  # type: ignore[misc]
        assert earliest <= now - dt.timedelta(days=30)
        assert _rows_at(work, repo_dir, private, after_row[1], db.port + 1) == ["0", "10"]
        assert _rows_at(work, repo_dir, private, after_row[3], db.port + 1) == [
            "0",
            "10",
            "20",
            "30",
        ]
        assert _rows_at(work, repo_dir, private, after_row[4], db.port + 1) == [
            "0",
            "10",
            "20",
            "30",
            "40",
        ]
