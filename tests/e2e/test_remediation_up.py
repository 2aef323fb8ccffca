"""`garrison up` with a health file: its agent process restarts a killed HTTP server (a real
one, started by the test), verifies it, stops at the runbook's budget with the breaker open (on
its /metrics), and every step is on the audit stream."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.cli import garrison
from tests.e2e.conftest import free_port, start_garrison


def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def _gauges(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=5
        ) as got:  # loopback
            text = got.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_up_restarts_a_killed_service_until_its_budget(tmp_path: Path) -> None:
    web = free_port()
    argv = [sys.executable, "-m", "http.server", str(web), "--bind", "127.0.0.1"]
    match = f"http.server {web} --bind"

    def serving() -> list[psutil.Process]:
        return [
            p
            for p in psutil.process_iter(["cmdline"])
            if match in " ".join(p.info["cmdline"] or ())
        ]

    first = subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    health = tmp_path / "health.yml"
    health.write_text(
        "services:\n"
        "  - name: web\n"
        "    zone: local\n"
        "    checks:\n"
        f"      - {{name: http, http: 'http://127.0.0.1:{web}/', interval: 500ms, timeout: 1s,"
        " failures: 2, of: 3}\n"
        "    remediation:\n"
        f"      restart_process: {{match: '{match}', start: {json.dumps(argv)},"
        f" cwd: '{tmp_path}'}}\n"
        "      budget: 2/1h\n"
        "      backoff: 1s\n"
        "      grace: 3s\n"
    )
    metrics = free_port()
    running = start_garrison(
        "up",
        tmp_path / "data",
        free_port(),
        env={
            "GARRISON_AGENT_HEALTH": str(health),
            "GARRISON_AGENT_METRICS_LISTEN": f"127.0.0.1:{metrics}",
        },
    )
    up = ("garrison_service_up", (("service", "web"), ("zone", "local")))
    breaker = ("garrison_remediation_breaker_open", (("subject", "service:web"),))
    verifying = ("garrison_remediation_verifying", (("subject", "service:web"),))
    try:
        running.wait_healthy()
        _until(lambda: _gauges(metrics).get(up) == 1.0, 60, "the agent to watch web")
        for _ in range(2):
            before = {p.pid for p in serving()}
            for proc in serving():
                proc.kill()
            first.poll()
            _until(lambda: _gauges(metrics).get(up) == 0.0, 20, "web seen down")
            _until(lambda b=before: bool({p.pid for p in serving()} - b), 30, "web restarted")
            _until(
                lambda: verifying not in _gauges(metrics) and _gauges(metrics).get(up) == 1.0,
                30,
                "the restart verified",
            )
        for proc in serving():
            proc.kill()
        _until(lambda: _gauges(metrics).get(breaker) == 1.0, 30, "the breaker to open")
        time.sleep(3)
        assert not serving(), "no restart past the budget"
        assert _gauges(metrics).get(up) == 0.0
        said = garrison(
            "agent", "status", data_dir=tmp_path / "data",
            env={"GARRISON_AGENT_METRICS_LISTEN": f"127.0.0.1:{metrics}"},
        )  # fmt: skip
        assert said.returncode == 0, said.stderr
        assert "down" in said.stdout
        assert "breaker open: service:web (`garrison agent rearm web`)" in said.stdout

        def audited(action: str) -> int:
            found = garrison(
                "logs", "search", f"action={action}", "--stream", "audit", "--format", "jsonl",
                data_dir=tmp_path / "data",
            )  # fmt: skip
            return len(found.stdout.splitlines())

        _until(lambda: audited("agent.remediation.breaker_open") == 1, 30, "the audit record")
        assert audited("agent.remediation.acted") == 2
        assert audited("agent.remediation.succeeded") == 2
        assert audited("collector.leases.post") >= 2
    finally:
        running.stop()
        for proc in serving():
            proc.kill()
        first.wait(5)
