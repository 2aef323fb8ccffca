"""Agent -> collector -> store with real processes: every line exactly once through crashes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from garrison.logstore.store import Store
from tests.cli import garrison_env
from tests.e2e.conftest import free_port, start_garrison

LINES = 1_000_000
DEADLINE = 300.0


def _pid_of(running: object, role: str, after: int = 0) -> int:
    pattern = re.compile(rf"started {role} \(pid (\d+)\)")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = running.output  # type: ignore[attr-defined]
        pids = [int(m[1]) for line in lines for m in [pattern.search(line)] if m]
        fresh = [p for p in pids if p != after]
        if fresh:
            return fresh[-1]
        time.sleep(0.1)
    raise AssertionError(f"no {role} started")


def _count(data_dir: Path) -> int:
    store = Store(data_dir / "logstore")
    try:
        return store.stream("app").next_offset if "app" in store.stream_names() else 0
    finally:
        store.close()


def _wait_for(data_dir: Path, count: int) -> int:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and _count(data_dir) < count:
        time.sleep(1.0)
    return _count(data_dir)


def _stored(data_dir: Path) -> list[int]:
    store = Store(data_dir / "logstore")
    try:
        if "app" not in store.stream_names():
            return []
        return [r.event()["n"] for r in store.stream("app").read(0, 10**9)]
    finally:
        store.close()


def test_every_line_once_through_rotation_and_kills(tmp_path: Path) -> None:
    """Lines written across a rotation, collector killed twice, agent once: each lands once."""
    log = tmp_path / "app.log"
    port = free_port()
    running = start_garrison(
        "up", tmp_path / "data", port, env={"GARRISON_AGENT_WATCH": f"jsonl:app:{log}"}
    )
    try:
        running.wait_healthy()
        collector = _pid_of(running, "collector")
        agent = _pid_of(running, "agent")
        fh = log.open("a")
        try:
            for n in range(LINES):
                fh.write(json.dumps({"n": n, "msg": "x" * 40}) + "\n")
                if n == LINES // 3:
                    fh.flush()
                    _wait_for(running.data_dir, 1)  # the agent has the file open before it rotates
                    os.kill(collector, signal.SIGKILL)
                    log.rename(tmp_path / "app.log.1")  # rotation by rename
                    fh.close()
                    fh = log.open("a")  # the writer reopens, as logrotate makes it
                if n == LINES // 2:
                    fh.flush()
                    os.kill(agent, signal.SIGKILL)
                if n == 2 * LINES // 3:
                    fh.flush()
                    collector = _pid_of(running, "collector", after=collector)
                    os.kill(collector, signal.SIGKILL)
        finally:
            fh.close()
        _wait_for(running.data_dir, LINES)
        stored = _stored(running.data_dir)
        missing = sorted(set(range(LINES)) - set(stored))
        assert sorted(stored) == list(range(LINES)), (len(stored), missing[:20], running.describe())
        env = garrison_env()
        for args in (("store", "checkpoint"), ("store", "verify")):
            done = subprocess.run(
                [sys.executable, "-m", "garrison", *args, "--data-dir", str(running.data_dir)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
    finally:
        assert running.stop() == 0
