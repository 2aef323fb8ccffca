"""`garrison up` supervises the server role: restarts it after a crash, stops it on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    START_TIMEOUT,
    STARTED_RE,
    STOP_TIMEOUT,
    free_port,
    pid_alive,
    start_garrison,
)

LONG_PUBLIC_URL = "https://garrison-control-plane.operations.internal.example.com:8443"


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until no live process has `pid` (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def test_up_restarts_killed_server_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """A SIGKILLed server child is replaced and healthy again; SIGTERM ends `up` with 0."""
    up = start_garrison("up", tmp_path / "data", free_port())
    try:
        first = int(up.wait_for_line(STARTED_RE).group(1))
        up.wait_healthy()

        os.kill(first, signal.SIGKILL)
        second = int(up.wait_for_line(STARTED_RE).group(1))
        assert second != first
        assert wait_gone(first, STOP_TIMEOUT)
        up.wait_healthy()

        up.proc.send_signal(signal.SIGTERM)
        try:
            code = up.proc.wait(timeout=STOP_TIMEOUT + START_TIMEOUT / 3)
        except subprocess.TimeoutExpired:
            pytest.fail(f"garrison up ignored SIGTERM\n{up.describe()}")
        assert code == 0, up.describe()
        assert wait_gone(second, STOP_TIMEOUT), "the server child outlived garrison up"
        assert up.health() is None
    finally:
        up.stop()
    assert "stopped server" in "".join(up.output)


def test_up_prints_a_long_setup_link_whole_on_one_line(tmp_path: Path) -> None:
    """With stdout piped (as under systemd or Docker) a long setup link is not wrapped or cut."""
    up = start_garrison(
        "up", tmp_path / "data", free_port(), env={"GARRISON_PUBLIC_URL": LONG_PUBLIC_URL}
    )
    try:
        line = up.wait_for_line(re.compile(r"/setup/")).string.rstrip("\n")
        match = re.search(rf"{re.escape(LONG_PUBLIC_URL)}/setup/([A-Za-z0-9_-]+)/$", line)
        assert match, f"setup link broken across lines:\n{up.describe()}"
        up.wait_healthy()
        assert up.get(f"/setup/{match.group(1)}/") == 200  # the token is whole: the link works
    finally:
        up.stop()
