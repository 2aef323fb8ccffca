"""Archiving health from the running cluster (``pg_stat_archiver``)."""

from __future__ import annotations

import datetime as dt
import subprocess  # nosec B404  # psql asks the cluster

from garrison.backup import postgres
from garrison.backup.seal import BackupError

_QUERY = (
    "SELECT coalesce(last_archived_wal, ''), coalesce(last_archived_time::text, ''),"
    " failed_count, coalesce(last_failed_wal, ''), coalesce(last_failed_time::text, ''),"
    " coalesce(extract(epoch FROM now() - last_archived_time)::bigint::text, '')"
    " FROM pg_stat_archiver"
)


def archiver_status(host: str, port: int, os_user: str | None) -> dict[str, str]:
    """The archiver's last success and failure, and the age of the last archived file."""
    argv = postgres.as_owner(
        [postgres.program("psql"), "-h", host, "-p", str(port), "-d", "postgres",
         "-X", "-A", "-t", "-F", "|", "-c", _QUERY],
        os_user,
    )  # fmt: skip
    asked = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603  # nosec B603
    if asked.returncode != 0:
        raise BackupError(f"could not ask the cluster: {asked.stderr.strip()}")
    wal, when, failed, failed_wal, failed_when, age = asked.stdout.strip().split("|")
    status = {
        "last_archived_wal": wal or "none",
        "last_archived_time": when or "never",
        "last_archived_age_s": age or "",
        "failed_count": failed,
        "last_failed_wal": failed_wal or "none",
    }
    failing = bool(failed_when) and (
        not when or dt.datetime.fromisoformat(failed_when) > dt.datetime.fromisoformat(when)
    )
    status["failed_since_last_archived"] = "yes" if failing else "no"
    return status
