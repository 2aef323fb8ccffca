"""Real journal files for tests: systemd-journal-remote turns export-format entries into one."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

JOURNAL_REMOTE = Path("/lib/systemd/systemd-journal-remote")
BOOT = "0123456789abcdef0123456789abcdef"
FAILED = b"Failed password for root from 2001:db8::%s port %d ssh2"
_files = itertools.count()

needs_journal_remote = pytest.mark.skipif(
    not JOURNAL_REMOTE.exists() and os.environ.get("CI") != "true",
    reason="systemd-journal-remote is not installed (scripts/bootstrap.sh --dev installs it)",
)


def write_journal(directory: Path, entries: list[dict[str, str]]) -> None:
    """A new journal file in `directory` holding `entries` (journal export format)."""
    records = []
    for entry in entries:
        fields = {"_BOOT_ID": BOOT, "_HOSTNAME": "web-1", "PRIORITY": "6", **entry}
        records.append("".join(f"{k}={v}\n" for k, v in fields.items()) + "\n")
    subprocess.run(
        [str(JOURNAL_REMOTE), f"--output={directory}/f{next(_files)}.journal", "-"],
        input="".join(records).encode(),
        check=True,
        capture_output=True,
    )


def sshd_entry(n: int, unit: str = "ssh.service") -> dict[str, str]:
    return {
        "__REALTIME_TIMESTAMP": str(1_796_112_000_000_000 + n * 1_000_001),
        "__MONOTONIC_TIMESTAMP": str(n + 1),
        "SYSLOG_IDENTIFIER": "sshd-session" if n % 2 else "sshd",
        "_PID": str(4000 + n),
        "_SYSTEMD_UNIT": unit,
        "MESSAGE": f"Failed password for root from 2001:db8::{n + 1:x} port {1000 + n} ssh2",
    }
