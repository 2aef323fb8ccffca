"""Restore drills: a random point of the window, restored and started, then checked.

A backup nobody has restored is a hope. A drill picks a moment of the recoverable window at
random, restores it into a scratch directory, starts the copy (socket only, no TCP), checks
that it answers, runs the operator's SQL check if there is one (its first value must be
true, or a non-zero number), stops it and removes it. The result is an event; a failed drill
is a high-severity finding.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from garrison.backup import postgres
from garrison.backup.catalog import Catalog
from garrison.backup.repo import Repository, iso
from garrison.backup.restore import Target, restore
from garrison.backup.seal import BackupError, Opener
from garrison.core.errors import GarrisonError

_TRUE = frozenset({"t", "true", "yes", "on"})


@dataclass(frozen=True)
class DrillResult:
    """One drill: where it restored to, and what it found."""

    point: str
    ok: bool
    reason: str
    seconds: float
    base: str = ""
    recovered_time: str = ""
    check_value: str = ""


def _check(target: Path, os_user: str | None, sql: str | None) -> str:
    """Start the restored copy, ask it, stop it; the SQL check's first value."""
    pg_ctl = postgres.program("pg_ctl", target)
    options = f"-c listen_addresses='' -c unix_socket_directories='{target}' -c port=5432"
    log = str(target / "drill.log")
    started = postgres.run(
        [pg_ctl, "-D", str(target), "-l", log, "-o", options, "-w", "-t", "300", "start"], os_user
    )
    if started.returncode != 0:
        log = (target / "drill.log").read_text(errors="replace")[-1500:]
        raise BackupError(f"the restored copy does not start: {log}")
    try:
        psql = [postgres.program("psql", target), "-h", str(target), "-p", "5432", "-d",
                "postgres", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c"]  # fmt: skip
        alive = postgres.run([*psql, "SELECT count(*) FROM pg_database"], os_user)
        if alive.returncode != 0 or not alive.stdout.strip().isdigit():
            raise BackupError(f"the restored copy does not answer: {alive.stderr.strip()}")
        if sql is None:
            return ""
        asked = postgres.run([*psql, sql], os_user)
        if asked.returncode != 0:
            raise BackupError(f"the SQL check failed: {asked.stderr.strip()}")
        value = (asked.stdout.strip().splitlines() or [""])[0].split("|")[0].strip()
        if value.lower() not in _TRUE and not (value.isdigit() and int(value) != 0):
            raise BackupError(f"the SQL check says {value!r}, not true")
        return value
    finally:
        postgres.run([pg_ctl, "-D", str(target), "-m", "fast", "-w", "stop"], os_user)


def drill(
    repo: Repository,
    opener: Opener,
    scratch: Path,
    *,
    os_user: str | None,
    sql: str | None = None,
    rng: random.Random | None = None,
) -> DrillResult:
    """Restore a random point of the window under `scratch`, check it, remove it."""
    began = time.monotonic()
    spans = Catalog.read(repo).intervals()
    if not spans:
        return DrillResult("", False, "nothing in the repository is restorable", 0.0)
    # a moment drawn evenly over what is restorable (holes left by WAL gaps excluded)
    lengths = [(end - begin).total_seconds() for begin, end, _ in spans]
    chance = (rng or random.Random()).random() * sum(lengths)  # noqa: S311  # nosec B311
    for (begin, _, _), length in zip(spans, lengths, strict=True):
        if chance <= length:
            point = begin + dt.timedelta(seconds=chance)
            break
        chance -= length
    else:
        point = spans[-1][1]
    point = point.replace(microsecond=point.microsecond // 1000 * 1000)
    holder = Path(tempfile.mkdtemp(prefix="garrison-drill-", dir=scratch))
    os.chmod(holder, 0o711)  # noqa: S103  # nosec B103  # postgres enters; the copy is 0700
    target = holder / "pgdata"
    try:
        restored = restore(repo, Target(time=point), target, opener, os_user=os_user)
        value = _check(target, os_user, sql)
    except GarrisonError as exc:
        return DrillResult(iso(point), False, exc.message, time.monotonic() - began)
    finally:
        shutil.rmtree(holder, ignore_errors=True)
    return DrillResult(
        iso(point),
        True,
        "",
        round(time.monotonic() - began, 3),
        base=restored.base,
        recovered_time=restored.recovered_time,
        check_value=value,
    )
