"""The monitor role over a real log store: metrics history and its downsampling, services by
zone and the single-zone finding (claim P1), alerts, remediation history and the open-breaker
finding, silent agents; read twice, recorded once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from garrison.demo import DEMO_HOST
from garrison.logstore.store import Store
from garrison.server.findings.models import Finding
from garrison.server.fleet.health import FleetMonitor
from garrison.server.fleet.models import (
    AlertRecord,
    Host,
    MetricPoint,
    RemediationRecord,
    ServiceInstance,
)

T0 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _snapshot(host: str, at: dt.datetime, cpu: float, **services: bool) -> dict[str, Any]:
    zones = {"api-1": "zone-a", "api-2": "zone-b", "web-1": "zone-a"}
    return {
        "class": "host_metrics",
        "host": host,
        "time": _iso(at),
        "cpu_percent": cpu,
        "mem_used_percent": 40.0,
        "disks": [{"mount": "/", "used_percent": 50.0, "inodes_used_percent": 3.0}],
        "services": [
            {"name": name, "zone": zones[host], "healthy": ok, "checks": {}}
            for name, ok in services.items()
        ],
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def _monitor(store: Store, tmp_path: Path) -> FleetMonitor:
    return FleetMonitor(store, tmp_path / "monitor.json")


@pytest.mark.django_db
def test_history_downsampled_and_expired(store: Store, tmp_path: Path) -> None:
    points = [_snapshot("web-1", T0 + dt.timedelta(seconds=10 * i), float(i)) for i in range(60)]
    store.append("metrics", points)
    monitor = _monitor(store, tmp_path)
    monitor.step(now=T0 + dt.timedelta(minutes=10))
    raw = MetricPoint.objects.filter(host="web-1", step=10)
    assert raw.count() == 60
    rolled = list(MetricPoint.objects.filter(host="web-1", step=300).order_by("at"))
    assert [p.at for p in rolled] == [T0, T0 + dt.timedelta(minutes=5)]
    assert rolled[0].values["cpu_percent"] == pytest.approx(sum(range(30)) / 30)
    assert rolled[0].values["cpu_percent_max"] == 29.0
    assert rolled[1].values["disk_used_percent"] == 50.0
    # A late point (an agent's spool shipped after an outage) rolls its bucket up again.
    store.append("metrics", [_snapshot("web-1", T0 + dt.timedelta(seconds=5), 1000.0)])
    monitor.step(now=T0 + dt.timedelta(minutes=11))
    again = MetricPoint.objects.get(host="web-1", step=300, at=T0)
    assert again.values["cpu_percent_max"] == 1000.0
    # Read again from the start (a lost checkpoint): the same rows.
    _monitor(store, tmp_path / "fresh").step(now=T0 + dt.timedelta(minutes=11))
    assert MetricPoint.objects.filter(host="web-1", step=10).count() == 60
    # A day later the points go; the rollups stay 30 days.
    monitor.step(now=T0 + dt.timedelta(days=1, minutes=11))
    assert not MetricPoint.objects.filter(step=10).exists()
    assert MetricPoint.objects.filter(step=300).count() == 2
    monitor.step(now=T0 + dt.timedelta(days=31))
    assert not MetricPoint.objects.exists()


@pytest.mark.django_db
def test_service_healthy_in_one_zone_is_a_finding(store: Store, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    store.append(
        "metrics", [_snapshot("api-1", now, 1, api=True), _snapshot("api-2", now, 1, api=True)]
    )
    monitor = _monitor(store, tmp_path)
    monitor.step(now=now)
    assert ServiceInstance.objects.filter(service="api", healthy=True).count() == 2
    assert not Finding.objects.exists()
    later = now + dt.timedelta(seconds=30)
    store.append(
        "metrics", [_snapshot("api-1", later, 1, api=True), _snapshot("api-2", later, 1, api=False)]
    )
    monitor.step(now=later)
    (finding,) = Finding.objects.all()
    assert finding.type == "Availability:Service/SingleZone"
    assert finding.title == "api runs healthy only in zone-a"
    assert finding.group["zones"] == ["zone-a", "zone-b"]
    assert finding.group["healthy_zones"] == ["zone-a"]
    monitor.step(now=later + dt.timedelta(seconds=20))
    assert Finding.objects.count() == 1, "the same episode, the same finding"
    back = later + dt.timedelta(seconds=60)
    store.append(
        "metrics", [_snapshot("api-1", back, 1, api=True), _snapshot("api-2", back, 1, api=True)]
    )
    monitor.step(now=back)
    gone = back + dt.timedelta(seconds=30)
    store.append("metrics", [_snapshot("api-1", gone, 1, api=False)])  # api-2 silent now too
    monitor.step(now=gone + dt.timedelta(minutes=6))
    titles = sorted(Finding.objects.values_list("title", flat=True))
    assert titles == ["api runs healthy in no zone", "api runs healthy only in zone-a"]


@pytest.mark.django_db
def test_alerts_remediation_and_open_breaker(store: Store, tmp_path: Path) -> None:
    base = {"host": "web-1", "instance": "/", "rule": "disk-high", "severity": 5.0,
            "condition": "disk_used_percent > 85", "description": "Full."}  # fmt: skip
    step = {"class": "remediation_activity", "host": "web-1", "subject": "service:web",
            "name": "web", "action": "restart_process", "plan": "restart web", "budget": 3,
            "window_s": 3600}  # fmt: skip
    alert = {"class": "host_alert", "since": T0.timestamp(), **base}
    minute = dt.timedelta(minutes=1)
    store.append(
        "system",
        [
            {**alert, "time": _iso(T0), "state": "firing", "value": 91},
            {**step, "time": _iso(T0), "outcome": "acted", "attempt": 1, "detail": "pid 7"},
            {**step, "time": _iso(T0), "outcome": "succeeded", "attempt": 1},
            {**step, "time": _iso(T0 + minute), "outcome": "breaker_open", "detail": "3 tries"},
            {**alert, "time": _iso(T0 + 2 * minute), "state": "resolved", "value": 70},
            {**alert, "time": "not a time", "since": "x", "state": "firing"},
        ],
    )
    monitor = _monitor(store, tmp_path)
    monitor.step(now=T0 + dt.timedelta(minutes=3))
    (record,) = AlertRecord.objects.all()
    assert record.started_at == T0
    assert record.ended_at == T0 + dt.timedelta(minutes=2)
    assert list(RemediationRecord.objects.order_by("ref").values_list("outcome", flat=True)) == [
        "acted", "succeeded", "breaker_open"
    ]  # fmt: skip
    types = dict(Finding.objects.values_list("type", "severity"))
    assert types == {"Health:Host/disk-high": 5.0, "Remediation:Host/CircuitBreakerOpen": 7.0}
    breaker = Finding.objects.get(type="Remediation:Host/CircuitBreakerOpen")
    assert "garrison agent rearm web" in breaker.remediation
    _monitor(store, tmp_path / "again").step(now=T0 + dt.timedelta(minutes=3))
    assert Finding.objects.count() == 2
    assert RemediationRecord.objects.count() == 3


@pytest.mark.django_db
def test_silent_agent(store: Store, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    Host.objects.create(name="quiet-1", zone="a", joined_at=now - dt.timedelta(hours=1))
    Host.objects.create(name="chatty-1", zone="a", joined_at=now - dt.timedelta(hours=1))
    Host.objects.create(name="waiting-1", zone="a")
    Host.objects.create(name=DEMO_HOST, zone="demo", joined_at=now - dt.timedelta(hours=1))
    store.append("metrics", [_snapshot("web-1", now, 1) | {"host": "chatty-1"}])
    _monitor(store, tmp_path).step(now=now)
    (finding,) = Finding.objects.all()
    assert finding.type == "Health:Host/AgentSilent"
    assert finding.host == "quiet-1"


@pytest.mark.django_db
def test_bad_records_are_skipped_alone(store: Store, tmp_path: Path) -> None:
    step = {"class": "remediation_activity", "host": "web-1", "subject": "service:web",
            "outcome": "acted", "time": _iso(T0)}  # fmt: skip
    store.append(
        "system",
        [
            {"class": "host_alert", "host": "web-1", "time": _iso(T0), "since": 1e20,
             "state": "firing", "rule": "r", "severity": 5},
            {**step, "attempt": -1, "detail": "nul \x00 inside"},
            {"class": "host_alert", "host": "web-1", "time": _iso(T0), "since": T0.timestamp(),
             "state": "sideways", "rule": "r", "severity": 5},
            {**step, "attempt": 2, "outcome": "succeeded"},
        ],
    )  # fmt: skip
    store.append(
        "metrics",
        [_snapshot("web-1", T0, 1) | {"services": [{"name": "api", "zone": "a", "healthy": True,
                                                     "checks": ["not", "a", "dict"]}]}],
    )  # fmt: skip
    monitor = _monitor(store, tmp_path)
    monitor.step(now=T0 + dt.timedelta(minutes=1))
    assert list(RemediationRecord.objects.order_by("ref").values_list("attempt", "outcome")) == [
        (None, "acted"), (2, "succeeded")
    ]  # fmt: skip
    assert "\x00" not in RemediationRecord.objects.get(outcome="acted").detail
    assert not AlertRecord.objects.exists()
    assert ServiceInstance.objects.get(service="api").checks == {}
    assert monitor.state.offsets == {"metrics": 1, "system": 4}


@pytest.mark.django_db
def test_instances_follow_the_health_files_and_the_fleet(store: Store, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    store.append("metrics", [_snapshot("api-1", now, 1, api=True, cron=True)])
    monitor = _monitor(store, tmp_path)
    monitor.step(now=now)
    assert set(ServiceInstance.objects.values_list("service", flat=True)) == {"api", "cron"}
    store.append("metrics", [_snapshot("api-1", now, 1, api=True)])  # cron taken out
    monitor.step(now=now)
    assert list(ServiceInstance.objects.values_list("service", flat=True)) == ["api"]
    Host.objects.create(name="api-1", zone="zone-a", joined_at=now, revoked_at=now)
    monitor.step(now=now)
    assert not ServiceInstance.objects.exists(), "a revoked host's instances go"


@pytest.mark.django_db
def test_no_judgement_while_catching_up(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from garrison.server.fleet import health  # noqa: PLC0415

    monkeypatch.setattr(health, "BATCH", 2)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    store.append("metrics", [_snapshot("api-1", old, 1, api=True) for _ in range(3)])
    monitor = _monitor(store, tmp_path)
    monitor.step(now=dt.datetime.now(dt.UTC))  # 2 of 3 read: behind, stale states not judged
    assert not Finding.objects.exists()
    monitor.step(now=dt.datetime.now(dt.UTC))  # caught up: judged
    assert Finding.objects.filter(type="Availability:Service/SingleZone").exists()
