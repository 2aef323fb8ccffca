"""When archiving is broken, nothing pretends otherwise: the base backup stops with the reason
(instead of waiting for ever), and the check says archiving fails."""

from __future__ import annotations

import os

from garrison.backup.repo import Repository
from tests.backup.helpers import cluster, gpg_keys, owned, workspace
from tests.cli import garrison


def test_a_base_backup_stops_and_the_check_fails_when_wal_cannot_be_archived() -> None:
    with workspace() as work, cluster(work) as db:
        public, _ = gpg_keys(work)
        repo = work / "repo"
        garrison("db", "init-repo", "--repo", str(repo), "--public-key", str(public))
        owned(repo)
        configured = garrison("db", "configure", "--pgdata", str(db.pgdata), "--repo", str(repo))
        assert configured.returncode == 0, configured.stderr
        os.chown(repo, 0, 0)  # PostgreSQL's user can no longer write the repository
        db.start()
        backup = garrison(
            "db", "backup", "--repo", str(repo), "--host", db.host, "--port", str(db.port)
        )
        assert backup.returncode != 0
        assert "the WAL it needs is not being archived" in backup.stderr
        assert Repository(str(repo)).bases() == []
        checked = garrison(
            "db", "check", "--repo", str(repo), "--host", db.host, "--port", str(db.port)
        )  # fmt: skip
        assert checked.returncode == 1
        assert "failed_since_last_archived: yes" in checked.stdout
        assert "problem: archiving fails" in checked.stdout
