"""PostgreSQL's own programs, run for the backup engine: where they are and as whom.

PostgreSQL refuses to run as root, and a local connection authenticates by peer (the OS user
is the role), so when Garrison runs as root the programs run as the data directory's owner
(``runuser``). The programs are Debian's (``/usr/lib/postgresql/VERSION/bin``), the newest
installed unless the cluster says which.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess  # nosec B404  # PostgreSQL's programs
from pathlib import Path
from typing import Final

from garrison.core.errors import ConfigError

LIB: Final = Path("/usr/lib/postgresql")
RUNUSER: Final = shutil.which("runuser") or "/usr/sbin/runuser"
_VERSION = re.compile(r"^\d+$")


def bin_dir(pgdata: Path | None = None) -> Path:
    """The directory of PostgreSQL's programs for the cluster in `pgdata` (its PG_VERSION),
    or the newest installed."""
    if pgdata is not None and (pgdata / "PG_VERSION").is_file():
        version = (pgdata / "PG_VERSION").read_text().strip()
        if _VERSION.match(version) and (LIB / version / "bin").is_dir():
            return LIB / version / "bin"
    versions = sorted(
        (int(p.name) for p in LIB.glob("*") if _VERSION.match(p.name) and (p / "bin").is_dir()),
        reverse=True,
    )
    if not versions:
        raise ConfigError(
            "PostgreSQL's programs are not installed", hint="apt-get install postgresql"
        )
    return LIB / str(versions[0]) / "bin"


def program(name: str, pgdata: Path | None = None) -> str:
    """The path of PostgreSQL program `name` (pg_basebackup, pg_ctl, ...)."""
    path = bin_dir(pgdata) / name
    if not path.exists():
        raise ConfigError(f"{path} is missing", hint="apt-get install postgresql")
    return str(path)


def as_owner(argv: list[str], owner: str | None) -> list[str]:
    """`argv` run as OS user `owner` when Garrison is root (else as it is)."""
    if owner is None or os.geteuid() != 0 or owner == "root":
        return argv
    return [RUNUSER, "-u", owner, "--", *argv]


def run(argv: list[str], owner: str | None) -> subprocess.CompletedProcess[str]:
    """Run `argv` to its end (as `owner` when Garrison is root), its output captured as text;
    the caller reads the exit status."""
    return subprocess.run(  # noqa: S603  # nosec B603  # callers pass fixed arguments
        as_owner(argv, owner), capture_output=True, text=True, check=False
    )


def owner_of(path: Path) -> str:
    """The OS user owning `path`."""
    return pwd.getpwuid(path.stat().st_uid).pw_name


def default_os_user() -> str | None:
    """Who runs PostgreSQL's programs when Garrison is root: ``postgres`` (Debian's)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ConfigError(
            "there is no OS user postgres to run PostgreSQL's programs as",
            hint="pass --os-user, the account that owns the cluster",
        ) from None
    return "postgres"
