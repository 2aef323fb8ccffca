"""Console pages and API of fleet health: sparklines on the hosts page, a host's charts over
each range with its checks, alerts and remediation, services by zone."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from garrison.server.fleet.models import (
    AlertRecord,
    Host,
    MetricPoint,
    RemediationRecord,
    ServiceInstance,
)
from tests.conftest import api_client, signed_in_client
from tests.factories import Person, make_person


def _history(host: str) -> None:
    now = timezone.now()
    for i in range(120):
        at = now - dt.timedelta(seconds=10 * i)
        MetricPoint.objects.create(
            host=host, step=10, at=at,
            values={"cpu_percent": i % 50, "mem_used_percent": 40, "disk_used_percent": 60},
        )  # fmt: skip
    for i in range(100):
        MetricPoint.objects.create(
            host=host, step=300, at=now - dt.timedelta(minutes=5 * (i + 1)),
            values={"cpu_percent": 10, "load_per_core": 0.5},
        )  # fmt: skip


def _services(now: dt.datetime) -> None:
    for host, zone, healthy in (("api-1", "zone-a", True), ("api-2", "zone-b", False)):
        Host.objects.create(name=host, zone=zone, joined_at=now)
        ServiceInstance.objects.create(
            host=host, service="api", zone=zone, healthy=healthy, changed_at=now, reported_at=now,
            checks={"http": {"healthy": healthy, "detail": "<script>alert(1)</script>"}},
        )  # fmt: skip


def test_hosts_page_has_sparklines(admin: Person) -> None:
    Host.objects.create(name="web-1", zone="a", joined_at=timezone.now())
    _history("web-1")
    page = signed_in_client(admin).get("/hosts/").content.decode()
    assert page.count('class="spark"') == 3
    assert "<polyline" in page
    assert 'href="/hosts/web-1/"' in page


def test_host_page_over_each_range(admin: Person) -> None:
    now = timezone.now()
    _services(now)
    _history("api-2")
    AlertRecord.objects.create(
        host="api-2", rule="disk-high", instance="/", severity=5, condition="disk > 85",
        value=91, started_at=now,
    )  # fmt: skip
    RemediationRecord.objects.create(
        ref="system:1", host="api-2", subject="service:api", action="restart_unit",
        plan="systemctl restart api", outcome="breaker_open", detail="3 attempts", at=now,
    )  # fmt: skip
    console = signed_in_client(admin)
    for chosen in ("hour", "day", "month"):
        page = console.get(f"/hosts/api-2/?range={chosen}").content.decode()
        assert page.count('class="line"') == 6
        assert "<polyline" in page
    hour = console.get("/hosts/api-2/").content.decode()
    assert "CPU: <strong>0.0%</strong>" in hour
    assert "disk-high" in hour
    assert "firing" in hour
    assert "breaker_open" in hour
    assert "systemctl restart api" in hour
    assert "<script>alert(1)</script>" not in hour
    assert "&lt;script&gt;" in hour
    assert console.get("/hosts/nope/").status_code == 404


def test_services_page_counts_healthy_zones(admin: Person) -> None:
    _services(timezone.now())
    page = signed_in_client(admin).get("/services/").content.decode()
    assert "1 of 2" in page
    assert "outcome-error" in page


def test_developers_do_not_read_fleet_health(db: None) -> None:
    developer = make_person("developer")
    console = signed_in_client(developer)
    assert console.get("/services/").status_code == 403


def test_api_metrics_and_services(admin: Person) -> None:
    now = timezone.now()
    _services(now)
    _history("api-1")
    client = api_client(admin)
    hour = client.get("/api/v1/hosts/api-1/metrics").json()
    assert hour["step_seconds"] == 10
    assert len(hour["series"]["cpu_percent"]) == 120
    month = client.get("/api/v1/hosts/api-1/metrics?range=month").json()
    assert month["step_seconds"] == 300
    assert len(month["series"]["load_per_core"]) == 100
    bad = client.get("/api/v1/hosts/api-1/metrics?range=year")
    assert bad.status_code == 400
    (service,) = client.get("/api/v1/services").json()
    assert service["zones"] == ["zone-a", "zone-b"]
    assert service["healthy_zones"] == ["zone-a"]
    assert service["available"] is False
