"""The health of a backup setup: the window, gaps, integrity, archiving, disk encryption.

`assess` gathers what ``garrison db check`` prints and what the backup role reports as a
``check`` event: the recoverable window, the newest base backup and its age, gaps in the
WAL, damaged or missing files, leftovers of interrupted writes, ``pg_stat_archiver`` when the
cluster is reachable, and whether the data directory sits on an encrypted volume (dm-crypt /
LUKS somewhere below its filesystem, as ``lsblk`` shows it).
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from garrison.backup import postgres
from garrison.backup.catalog import Catalog, Damage, Gap, verify
from garrison.backup.repo import BaseEntry, Repository, iso, parse_iso
from garrison.backup.seal import BackupError

#: A base backup older than this is stale (daily backups, with an hour and more of slack).
STALE_BASE: Final = dt.timedelta(hours=26)
FINDMNT: Final = shutil.which("findmnt") or "/usr/bin/findmnt"
LSBLK: Final = shutil.which("lsblk") or "/usr/bin/lsblk"
_QUERY = (
    "SELECT coalesce(last_archived_wal, ''), coalesce(last_archived_time::text, ''),"
    " failed_count, coalesce(last_failed_wal, ''), coalesce(last_failed_time::text, ''),"
    " coalesce(extract(epoch FROM now() - last_archived_time)::bigint::text, '')"
    " FROM pg_stat_archiver"
)


def archiver_status(host: str, port: int, os_user: str | None) -> dict[str, str]:
    """The archiver's last success and failure, and the age of the last archived file."""
    psql = [postgres.program("psql"), "-h", host, "-p", str(port), "-d", "postgres"]
    asked = postgres.run([*psql, "-X", "-A", "-t", "-F", "|", "-c", _QUERY], os_user)
    if asked.returncode != 0:
        raise BackupError(f"could not ask the cluster: {asked.stderr.strip()}")
    wal, when, failed, failed_wal, failed_when, age = asked.stdout.strip().split("|")
    failing = bool(failed_when) and (
        not when or dt.datetime.fromisoformat(failed_when) > dt.datetime.fromisoformat(when)
    )
    return {
        "last_archived_wal": wal or "none",
        "last_archived_time": when or "never",
        "last_archived_age_s": age or "",
        "failed_count": failed,
        "last_failed_wal": failed_wal or "none",
        "failed_since_last_archived": "yes" if failing else "no",
    }


def disk_encryption(path: Path) -> tuple[bool, str]:
    """(whether `path` is on a dm-crypt volume, the block devices below its filesystem)."""
    mount = postgres.run([FINDMNT, "-n", "-o", "SOURCE,FSTYPE", "-T", str(path)], None)
    if mount.returncode != 0 or not mount.stdout.strip():
        return False, f"findmnt does not know {path}"
    source, _, fstype = mount.stdout.split("\n", 1)[0].partition(" ")
    if not source.startswith("/dev/"):
        return False, f"{source} ({fstype.strip()}, not a block device)"
    chain = postgres.run([LSBLK, "-s", "-n", "-r", "-o", "NAME,TYPE", source], None)
    devices = [line.split() for line in chain.stdout.splitlines() if line.strip()]
    described = " <- ".join(f"{name} ({kind})" for name, kind in devices) or source
    return any(kind == "crypt" for _, kind in devices), described


@dataclass
class Health:
    """What `assess` found."""

    window: tuple[dt.datetime, dt.datetime] | None
    bases: int
    wal: int
    newest_base: BaseEntry | None
    gaps: list[Gap] = field(default_factory=list)
    damaged: list[Damage] = field(default_factory=list)
    loose: list[str] = field(default_factory=list)
    archiver: dict[str, str] | None = None
    encrypted: tuple[bool, str] | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def stale(self) -> bool:
        return (
            self.newest_base is None
            or self.now - parse_iso(self.newest_base.finished_at) > STALE_BASE
        )

    @property
    def problems(self) -> list[str]:
        """What is wrong, in words (empty: healthy). Disk encryption is evidence, not health."""
        found = []
        if self.window is None:
            found.append("nothing is restorable")
        found += [f"WAL missing on timeline {g.timeline}: {g.first} to {g.last}" for g in self.gaps]
        found += [f"{d.key}: {d.reason}" for d in self.damaged]
        if self.stale:
            found.append("no base backup in the last 26 hours")
        if self.archiver is not None and self.archiver["failed_since_last_archived"] == "yes":
            found.append(f"archiving fails (last failed: {self.archiver['last_failed_wal']})")
        return found

    def fields(self) -> dict[str, Any]:
        """The event fields of a check."""
        facts: dict[str, Any] = {
            "recoverable_from": iso(self.window[0]) if self.window else "",
            "recoverable_to": iso(self.window[1]) if self.window else "",
            "base_backups": self.bases,
            "wal_files": self.wal,
            "last_base_backup": self.newest_base.finished_at if self.newest_base else "",
            "gaps": len(self.gaps),
            "damaged": len(self.damaged),
            "base_stale": self.stale,
            "archiving_failing": bool(
                self.archiver and self.archiver["failed_since_last_archived"] == "yes"
            ),
            "problems": self.problems,
        }
        if self.archiver is not None:
            facts["archiver"] = self.archiver
        if self.encrypted is not None:
            facts["data_dir_encrypted"], facts["data_dir_devices"] = self.encrypted
        return facts

    def lines(self) -> list[str]:
        """``key: value`` lines for ``garrison db check``."""
        out = [
            f"recoverable_from: {iso(self.window[0]) if self.window else 'none'}",
            f"recoverable_to: {iso(self.window[1]) if self.window else 'none'}",
            f"base_backups: {self.bases}",
            f"last_base_backup: {self.newest_base.finished_at if self.newest_base else 'none'}",
            f"wal_files: {self.wal}",
        ]
        out += [f"gap: timeline {g.timeline} {g.first} to {g.last} missing" for g in self.gaps]
        out += [f"damaged: {d.key}: {d.reason}" for d in self.damaged]
        out += [f"incomplete: {p} (an interrupted write; never counted)" for p in self.loose]
        for key, value in (self.archiver or {}).items():
            out.append(f"{key}: {value}")
        if self.encrypted is not None:
            out.append(f"data_dir_encrypted: {'yes' if self.encrypted[0] else 'no'}")
            out.append(f"data_dir_devices: {self.encrypted[1]}")
        out += [f"problem: {p}" for p in self.problems]
        return out


def assess(
    repo: Repository,
    *,
    cluster: tuple[str, int] | None = None,
    os_user: str | None = None,
    pgdata: Path | None = None,
    now: dt.datetime | None = None,
    full: bool = True,
) -> Health:
    """Everything `Health` holds (the archiver when `cluster` (host, port) is given, the disk
    when `pgdata` is; checksums with `full`, else sizes only)."""
    catalog = Catalog.read(repo)
    health = Health(
        window=catalog.window(),
        bases=len(catalog.bases),
        wal=len(catalog.wal),
        newest_base=catalog.bases[-1] if catalog.bases else None,
        gaps=catalog.gaps(),
        damaged=verify(repo, catalog, full=full),
        loose=repo.loose(),
        archiver=archiver_status(*cluster, os_user) if cluster else None,
        encrypted=disk_encryption(pgdata) if pgdata else None,
    )
    if now is not None:
        health.now = now
    return health
