"""Claim P1 end to end: a service with an instance in each of two zones (real HTTP servers,
watched by two agents of two hosts through a real collector into the store, judged by the
monitor); one zone's instance stopped, and the finding says the service runs in one zone."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from garrison.agent.daemon import Agent
from garrison.agent.identity import Identity, new_key_and_csr
from garrison.host.checks import HTTPCheck, Verdict
from garrison.host.monitor import HostMonitor, Service
from garrison.server.findings.models import Finding
from garrison.server.fleet.health import FleetMonitor
from garrison.server.fleet.models import ServiceInstance
from tests.pipeline.world import Loopback, loopback_collector
from tests.ssh.helpers import free_port


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Loopback]:
    made = loopback_collector(tmp_path)
    thread = threading.Thread(target=made.collector.serve_forever, daemon=True)
    thread.start()
    yield made
    made.collector.shutdown()
    thread.join(5)
    made.store.close()


def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.django_db(transaction=True)
def test_one_zone_stopped_is_a_single_zone_finding(world: Loopback, tmp_path: Path) -> None:
    host, port = world.collector.address
    url = f"https://{host}:{port}"
    servers, agents = [], []
    stop = threading.Event()
    try:
        for name, zone in (("api-1", "zone-a"), ("api-2", "zone-b")):
            web = free_port()
            servers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "http.server", str(web), "--bind", "127.0.0.1"],
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            state = tmp_path / name
            key_pem, csr = new_key_and_csr(name)
            Identity(state / "identity").save(
                key_pem, world.ca.sign_client(csr, name, 60), world.ca.cert_path.read_bytes()
            )
            check = HTTPCheck("http", f"http://127.0.0.1:{web}/", interval_s=0.2, timeout_s=1)
            monitor = HostMonitor(
                [Service("api", zone, [(check, Verdict(2, 3))])],
                (), state / "health", metrics_every=0.5,
            )  # fmt: skip
            agent = Agent(state, url, [], monitor=monitor)
            agents.append(agent)
            threading.Thread(target=agent.run, args=(stop, 0.1), daemon=True).start()
        fleet = FleetMonitor(world.store, tmp_path / "monitor.json")

        def healthy() -> int:
            fleet.step(now=dt.datetime.now(dt.UTC))
            return ServiceInstance.objects.filter(service="api", healthy=True).count()

        _until(lambda: healthy() == 2, 30, "two healthy instances")
        assert not Finding.objects.filter(type="Availability:Service/SingleZone").exists()
        servers[1].kill()  # zone-b's instance stops
        servers[1].wait(5)
        _until(
            lambda: (
                healthy() == 1
                and Finding.objects.filter(type="Availability:Service/SingleZone").exists()
            ),
            30,
            "the single-zone finding",
        )
        finding = Finding.objects.get(type="Availability:Service/SingleZone")
        assert finding.title == "api runs healthy only in zone-a"
        assert finding.group["zones"] == ["zone-a", "zone-b"]
    finally:
        stop.set()
        time.sleep(0.3)
        for agent in agents:
            agent.close()
        for server in servers:
            server.kill()
            server.wait(5)
