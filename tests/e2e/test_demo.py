"""`garrison demo` on a running `garrison up`: logs, findings and notifications in seconds;
`garrison demo remove` takes the findings and the host away."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.cli import garrison
from tests.detect.helpers import Receiver
from tests.e2e.conftest import free_port, start_garrison

NOTIFY_TIMEOUT = 30.0


def _garrison(data_dir: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return garrison(*args, data_dir=data_dir, env={"GARRISON_PORT": str(port)})


def test_demo_goes_through_the_pipeline_and_is_removed(tmp_path: Path, receiver: Receiver) -> None:
    port = free_port()
    data_dir = (tmp_path / "data").resolve()
    up = start_garrison(
        "up",
        data_dir,
        port,
        env={
            "GARRISON_NOTIFY_ROUTES": f"webhook:7:{receiver.url}",
            "GARRISON_AGENT_WATCH": f"sshd:ssh:{tmp_path / 'quiet.log'}",
        },
    )
    try:
        up.wait_healthy()
        assert "garrison demo" in "".join(up.output)  # offered on the first start

        shown = _garrison(data_dir, port, "demo")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "105 demo log lines from demo-web-1" in shown.stdout
        for title in ("SSH login after a brute force", "Port scan", "Web scanner user agent"):
            assert title in shown.stdout

        deadline = time.monotonic() + NOTIFY_TIMEOUT
        while len(receiver.received) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        announced = {f["type"] for body in receiver.bodies() for f in body["findings"]}
        assert "UnauthorizedAccess:EC2/SSHBruteForceSuccess" in announced
        assert all(f["host"] == "demo-web-1" for b in receiver.bodies() for f in b["findings"])

        removed = _garrison(data_dir, port, "demo", "remove")
        assert removed.returncode == 0, removed.stderr
        assert "removed 14 findings and the host demo-web-1" in removed.stdout
        assert not (data_dir / "demo").exists()

        trail = _garrison(
            data_dir,
            port,
            "logs",
            "search",
            "--stream",
            "audit",
            "--format",
            "jsonl",
            "category=cli",
        )
        assert "cli.demo.run" in trail.stdout
        assert "cli.demo.remove" in trail.stdout
    finally:
        up.stop()


def test_demo_without_a_running_collector_says_what_to_do(tmp_path: Path) -> None:
    failed = _garrison((tmp_path / "data").resolve(), free_port(), "demo")
    assert failed.returncode == 1
    assert "the collector does not answer" in failed.stderr
    assert "garrison up" in failed.stderr
