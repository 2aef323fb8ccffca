"""Remediation with real processes: a killed HTTP server restarted and verified, the budget and
the circuit breaker, re-arming, flapping checks, dry-run, the fleet-wide zone limit."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from garrison.host.checks import CommandCheck, HTTPCheck, Result, Verdict
from garrison.host.guard import Limits
from garrison.host.monitor import HostMonitor, Runbook, Service, request_rearm
from garrison.host.remediate import CommandAction, RestartProcess, reap
from tests.ssh.helpers import free_port

Events = list[tuple[str, dict[str, Any]]]


def _steps(events: Events) -> list[str]:
    return [e["outcome"] for _, e in events if e["class"] == "remediation_activity"]


class _Server:
    """``python -m http.server`` on a loopback port, started by the test (and by the agent)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        (folder / "health").write_text("ok\n")
        self.argv = (sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1")
        self.first = subprocess.Popen(self.argv, cwd=folder, stderr=subprocess.DEVNULL)

    @property
    def match(self) -> str:
        return f"http.server {self.port} --bind"

    def pids(self) -> list[int]:
        return [p.pid for p in RestartProcess(self.match, self.argv).matching()]

    def kill(self) -> None:
        for pid in self.pids():
            psutil.Process(pid).kill()
        self.first.poll()

    def stop(self) -> None:
        self.kill()
        self.first.wait(5)
        time.sleep(0.1)
        reap()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    running = _Server(tmp_path)
    check = HTTPCheck("http", f"http://127.0.0.1:{running.port}/health", body_contains="ok")
    _until(lambda: check.run().healthy, 10)
    yield running
    running.stop()


def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _web(server: _Server, *, budget: int = 3, dry_run: bool = False) -> Service:
    check = HTTPCheck(
        "http",
        f"http://127.0.0.1:{server.port}/health",
        body_contains="ok",
        interval_s=0.2,
        timeout_s=1.0,
    )
    runbook = Runbook(
        RestartProcess(server.match, server.argv, cwd=str(server.folder)),
        Limits(budget=budget, window_s=3600, backoff_s=0.1, backoff_max_s=0.4),
        grace_s=1.5,
        dry_run=dry_run,
    )
    return Service("web", "zone-a", [(check, Verdict(2, 3))], runbook)


def _monitor(tmp_path: Path, services: list[Service], **kwargs: Any) -> HostMonitor:
    return HostMonitor(services, (), tmp_path / "state", metrics_every=3600, **kwargs)


def _run(monitor: HostMonitor, until: Callable[[Events], bool], seconds: float = 20) -> Events:
    seen: Events = []
    deadline = time.monotonic() + seconds
    while not until(seen):
        assert time.monotonic() < deadline, f"timed out; saw {_steps(seen)}"
        seen += monitor.tick()
        time.sleep(0.05)
    return seen


def test_killed_service_restarted_verified_then_breaker(server: _Server, tmp_path: Path) -> None:
    monitor = _monitor(tmp_path, [_web(server)])
    monitor.tick()
    for attempt in (1, 2, 3):
        server.kill()
        seen = _run(monitor, lambda s: "succeeded" in _steps(s))
        assert _steps(seen) == ["acted", "succeeded"]
        down = [e for _, e in seen if e["class"] == "service_health"]
        assert down[0]["healthy"] is False, "detected as failing before acting"
        acted = next(e for _, e in seen if e.get("outcome") == "acted")
        assert acted["attempt"] == attempt
        assert acted["action"] == "restart_process"
        assert server.pids(), "running again"
        assert monitor.services[0].healthy
    server.kill()  # the fourth time within the hour: the budget is spent
    seen = _run(monitor, lambda s: "breaker_open" in _steps(s))
    assert _steps(seen) == ["breaker_open"]
    assert "re-armed" in seen[-1][1]["detail"]
    quiet = time.monotonic() + 2
    while time.monotonic() < quiet:
        assert not _steps(monitor.tick()), "nothing runs while the breaker is open"
        time.sleep(0.05)
    assert not server.pids()
    # A restarted agent keeps the open breaker.
    again = _monitor(tmp_path, [_web(server)])
    assert again.guard.is_open("service:web")
    request_rearm(tmp_path / "state", "web", "alice")
    seen = _run(again, lambda s: "succeeded" in _steps(s))
    assert _steps(seen) == ["rearmed", "acted", "succeeded"]
    rearmed = next(e for _, e in seen if e.get("outcome") == "rearmed")
    assert rearmed["rearmed_by"] == "alice"


def test_backoff_between_failed_attempts(server: _Server, tmp_path: Path) -> None:
    """A start that dies at once is a failed attempt; the next waits longer each time."""
    service = _web(server, budget=3)
    assert service.remediation is not None
    broken = Runbook(
        RestartProcess(server.match, (sys.executable, "-c", "raise SystemExit(3)")),
        Limits(budget=3, window_s=3600, backoff_s=0.4, backoff_max_s=1.0),
        grace_s=0.1,
    )
    service.remediation = broken
    monitor = _monitor(tmp_path, [service])
    server.kill()
    seen = _run(monitor, lambda s: "breaker_open" in _steps(s))
    assert _steps(seen) == ["failed", "failed", "failed", "breaker_open"]
    times = monitor.guard.recent("service:web", broken.limits, time.time())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.4
    assert gaps[1] >= 0.8, "doubled"


def test_dry_run_acts_on_nothing(server: _Server, tmp_path: Path) -> None:
    monitor = _monitor(tmp_path, [_web(server, budget=2, dry_run=True)])
    server.kill()
    seen = _run(monitor, lambda s: "breaker_open" in _steps(s))
    assert _steps(seen) == ["dry_run", "dry_run", "breaker_open"]
    assert all(e["dry_run"] for _, e in seen if e["class"] == "remediation_activity")
    assert "would restart" in next(e for _, e in seen if e.get("outcome") == "dry_run")["detail"]
    assert not server.pids(), "nothing was restarted"


class _Flapping:
    """A check that fails every third run: over its N-of-M threshold never."""

    name = "flappy"
    interval_s = 0.0
    timeout_s = 1.0

    def __init__(self) -> None:
        self.runs = 0

    def run(self) -> Result:
        self.runs += 1
        return Result(self.runs % 3 != 0, f"run {self.runs}", 0.0)


def test_flapping_check_causes_no_action(tmp_path: Path) -> None:
    marker = tmp_path / "acted"
    flappy = _Flapping()
    runbook = Runbook(
        RestartProcess("no-such-process-xyz", ("/usr/bin/touch", str(marker))), grace_s=0.1
    )
    monitor = _monitor(tmp_path, [Service("web", "a", [(flappy, Verdict(2, 3))], runbook)])
    events: Events = []
    for _ in range(60):
        events += monitor.tick()
    assert flappy.runs == 60
    assert not _steps(events)
    assert not [e for _, e in events if e["class"] == "service_health"], "the state never changed"
    assert not marker.exists()


class _Leases:
    """The fleet's leases as the collector keeps them (garrison.pipeline.leases)."""

    def __init__(self) -> None:
        from garrison.pipeline.leases import Leases  # noqa: PLC0415

        self.leases = Leases()

    def for_host(self, host: str) -> Any:
        leases = self.leases

        class _Coordinator:
            def acquire(self, service: str, zone: str, ttl_s: float) -> tuple[bool, str]:
                return leases.acquire(service, zone, host, ttl_s)

            def release(self, service: str, zone: str) -> None:
                leases.release(service, zone, host)

        return _Coordinator()


def test_one_zone_remediated_at_a_time(tmp_path: Path) -> None:
    fleet = _Leases()
    failing = CommandCheck("down", ("/bin/false",), interval_s=0.0)
    slow = Runbook(CommandAction(("/bin/true",)), grace_s=1.0)
    a = HostMonitor(
        [Service("api", "zone-a", [(failing, Verdict(1, 1))], slow)],
        (), tmp_path / "a", coordinator=fleet.for_host("api-1"), metrics_every=3600,
    )  # fmt: skip
    b = HostMonitor(
        [Service("api", "zone-b", [(failing, Verdict(1, 1))], slow)],
        (), tmp_path / "b", coordinator=fleet.for_host("api-2"), metrics_every=3600,
    )  # fmt: skip
    assert _steps(a.tick()) == ["acted"]
    deferred = b.tick()
    assert _steps(deferred) == ["deferred"]
    assert "zone-a" in deferred[-1][1]["detail"]
    assert not _steps(b.tick()), "said once"
    _run(a, lambda s: "failed" in _steps(s))  # verified: still down; the lease is released
    assert _steps(b.tick()) == ["acted"]


class _Unreachable:
    def acquire(self, service: str, zone: str, ttl_s: float) -> tuple[bool, str]:
        raise OSError("connection refused")

    def release(self, service: str, zone: str) -> None:
        raise OSError("connection refused")


@pytest.mark.parametrize(("lease", "expected"), [(True, "deferred"), (False, "acted")])
def test_without_the_control_plane(tmp_path: Path, lease: bool, expected: str) -> None:
    """No answer to the lease: nothing runs, unless the runbook says ``lease: false``."""
    failing = CommandCheck("down", ("/bin/false",), interval_s=0.0)
    runbook = Runbook(CommandAction(("/bin/true",)), grace_s=60, lease=lease)
    monitor = HostMonitor(
        [Service("api", "zone-a", [(failing, Verdict(1, 1))], runbook)],
        (), tmp_path / "s", coordinator=_Unreachable(), metrics_every=3600,
    )  # fmt: skip
    events = monitor.tick()
    assert _steps(events) == [expected]
    if expected == "deferred":
        assert "did not answer: connection refused" in events[-1][1]["detail"]


def test_unreadable_state_holds_every_runbook_until_rearmed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "remediation.json").write_text("{not json")
    marker = tmp_path / "acted"
    failing = CommandCheck("down", ("/bin/false",), interval_s=0.0)
    runbook = Runbook(CommandAction(("/usr/bin/touch", str(marker))), grace_s=60, lease=False)
    monitor = HostMonitor(
        [Service("api", "a", [(failing, Verdict(1, 1))], runbook)], (), state, metrics_every=3600
    )
    events = monitor.tick()
    assert _steps(events) == ["breaker_open"]
    held = next(e for _, e in events if e["class"] == "remediation_activity")
    assert "garrison agent rearm all" in held["detail"]
    assert not _steps(monitor.tick()), "said once"
    assert not marker.exists()
    assert list(state.glob("remediation.json.unreadable-*"))
    request_rearm(state, "all", "alice")
    assert _steps(monitor.tick()) == ["rearmed", "acted"]
    assert marker.exists()


def test_an_action_that_raises_is_a_failed_attempt(tmp_path: Path) -> None:
    class _Broken:
        kind = "command"

        def describe(self) -> str:
            return "explode"

        def run(self) -> Any:
            raise RuntimeError("boom")

    failing = CommandCheck("down", ("/bin/false",), interval_s=0.0)
    monitor = HostMonitor(
        [Service("api", "a", [(failing, Verdict(1, 1))], Runbook(_Broken(), lease=False))],
        (), tmp_path / "s", metrics_every=3600,
    )  # fmt: skip
    events = monitor.tick()
    assert _steps(events) == ["failed"]
    assert events[-1][1]["detail"] == "RuntimeError: boom"


def test_one_budget_per_alert_rule_whatever_fires(tmp_path: Path) -> None:
    from garrison.host.alerts import AlertRule  # noqa: PLC0415

    class _TwoFullDisks:
        def snapshot(self) -> dict[str, Any]:
            return {"disks": [{"mount": "/a", "used_percent": 99.0},
                              {"mount": "/b", "used_percent": 99.0}]}  # fmt: skip

    rule = AlertRule(
        "disk-high", "disk_used_percent", ">", 85,
        remediation=Runbook(CommandAction(("/bin/false",)), Limits(budget=2, backoff_s=0)),
    )  # fmt: skip
    monitor = HostMonitor(
        [],
        (rule,),
        tmp_path / "s",
        metrics_every=0,
        sampler=_TwoFullDisks(),  # type: ignore[arg-type]
    )
    steps: list[str] = []
    for _ in range(6):
        steps += _steps(monitor.tick())
    assert steps == ["failed", "failed", "breaker_open"], "two attempts in all, not two a mount"


def test_checks_due_together_run_at_once(tmp_path: Path) -> None:
    """Three checks due in the same round meet at a barrier: they only pass if they run at
    the same time (one after another, each would wait for the others in vain)."""
    import threading  # noqa: PLC0415

    barrier = threading.Barrier(3, timeout=10)

    class _Meeting:
        interval_s = 60.0
        timeout_s = 10.0

        def __init__(self, name: str) -> None:
            self.name = name

        def run(self) -> Result:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return Result(False, "ran alone", 0.0)
            return Result(True, "met the others", 0.0)

    checks = [_Meeting(f"c{i}") for i in range(3)]
    monitor = HostMonitor(
        [Service("api", "a", [(c, Verdict(1, 1)) for c in checks])], (), tmp_path / "s",
        metrics_every=3600,
    )  # fmt: skip
    monitor.tick()
    assert [monitor.services[0].last[c.name].detail for c in checks] == ["met the others"] * 3
