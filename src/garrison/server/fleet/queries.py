"""Permission-checked reads of the fleet."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from garrison.core.errors import NotFoundError, PermissionDeniedError
from garrison.pipeline import activity
from garrison.server.accounts.models import User
from garrison.server.accounts.roles import READ_ALL
from garrison.server.fleet.models import (
    AlertRecord,
    Host,
    MetricPoint,
    RemediationRecord,
    ServiceInstance,
)


def hosts_visible_to(actor: User) -> QuerySet[Host]:
    """Every host, for those who read fleet-wide data."""
    if actor.role not in READ_ALL:
        raise PermissionDeniedError("your role may not list hosts")
    return Host.objects.all()


SILENT_AFTER = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class HostView:
    """A host with what the collector saw of it lately."""

    host: Host
    last_seen: dt.datetime | None
    events_per_second: dict[str, float]
    agent: str
    cert_not_after: dt.datetime | None
    address: str = ""

    @property
    def silent(self) -> bool:
        """A joined, unrevoked host that sent nothing (not even a heartbeat) for 5 minutes."""
        if self.host.state != "joined":
            return False
        return self.last_seen is None or timezone.now() - self.last_seen > SILENT_AFTER


def _moment(value: object) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


def view_of(host: Host, seen: dict[str, dict[str, object]]) -> HostView:
    """`host` with its entry of the collector's activity snapshot `seen`.

    The certificate expiry is the later of the one issued at join and the one the host last
    presented to the collector (renewals happen there).
    """
    entry = seen.get(host.name, {})
    rates = entry.get("events_per_second")
    agent, address = entry.get("agent"), entry.get("address")
    expiries = [m for m in (host.cert_not_after, _moment(entry.get("cert_not_after"))) if m]
    return HostView(
        host,
        _moment(entry.get("last_seen")),
        rates if isinstance(rates, dict) else {},
        agent if isinstance(agent, str) else "",
        max(expiries) if expiries else None,
        address if isinstance(address, str) else "",
    )


def activity_snapshot() -> dict[str, dict[str, object]]:
    """The collector's last published activity snapshot."""
    return activity.read(settings.PREPARED.data.activity)


def fleet_view(actor: User) -> list[HostView]:
    """Every host with its last-seen time, events/s per stream, agent, cert and silent flag."""
    seen = activity_snapshot()
    return [view_of(host, seen) for host in hosts_visible_to(actor)]


def access_host(actor: User, name: str) -> Host:
    """One host by name."""
    host = hosts_visible_to(actor).filter(name=name.lower()).first() if "\x00" not in name else None
    if host is None:
        raise NotFoundError(f"no host named {name!r}")
    return host


#: What each console range shows: how far back, and from which resolution.
RANGES = {"hour": (dt.timedelta(hours=1), 10), "day": (dt.timedelta(days=1), 300),
          "month": (dt.timedelta(days=30), 300)}  # fmt: skip
#: The charted metrics: key, title, unit, fixed top (None: scaled to the data).
CHARTED = (
    ("cpu_percent", "CPU", "%", 100.0),
    ("mem_used_percent", "Memory", "%", 100.0),
    ("disk_used_percent", "Fullest disk", "%", 100.0),
    ("load_per_core", "Load per core", "", None),
    ("net_recv_bytes_per_s", "Network in", "B/s", None),
    ("net_sent_bytes_per_s", "Network out", "B/s", None),
)


def metric_history(
    host: str, since: dt.datetime, step: int
) -> dict[str, list[tuple[dt.datetime, float]]]:
    """Each kept value of `host` since `since` at resolution `step` (10 or 300 s), in time
    order; the newest raw points complete a range that rollups do not cover yet."""
    found: dict[str, list[tuple[dt.datetime, float]]] = {}
    rows = list(
        MetricPoint.objects.filter(host=host, step=step, at__gte=since)
        .order_by("at")
        .values_list("at", "values")
    )
    if step != 10:
        last = rows[-1][0] if rows else since
        rows += (
            MetricPoint.objects.filter(host=host, step=10, at__gt=last)
            .order_by("at")
            .values_list("at", "values")
        )
    for at, values in rows:
        for key, value in values.items():
            found.setdefault(key, []).append((at, float(value)))
    return found


def sparkline_values(hosts: list[str]) -> dict[str, dict[str, list[tuple[dt.datetime, float]]]]:
    """The last hour of CPU, memory and disk of each host, for the hosts page."""
    since = timezone.now() - dt.timedelta(hours=1)
    found: dict[str, dict[str, list[tuple[dt.datetime, float]]]] = {h: {} for h in hosts}
    rows = MetricPoint.objects.filter(host__in=hosts, step=10, at__gte=since).order_by("at")
    for host, at, values in rows.values_list("host", "at", "values"):
        for key in ("cpu_percent", "mem_used_percent", "disk_used_percent"):
            if key in values:
                found[host].setdefault(key, []).append((at, float(values[key])))
    return found


@dataclass(frozen=True)
class ServiceView:
    """A service across the fleet: its instances, its zones, the healthy ones."""

    name: str
    instances: list[ServiceInstance]
    zones: list[str]
    healthy_zones: list[str]

    @property
    def available(self) -> bool:
        """Healthy in two zones or more (claim P1)."""
        return len(self.healthy_zones) >= 2


def services_view(actor: User) -> list[ServiceView]:
    """Every service with its instances and how many zones are healthy."""
    if actor.role not in READ_ALL:
        raise PermissionDeniedError("your role may not list services")
    fresh = timezone.now() - dt.timedelta(minutes=settings.GARRISON.agent_silent_minutes)
    by_name: dict[str, list[ServiceInstance]] = {}
    for instance in ServiceInstance.objects.all():
        by_name.setdefault(instance.service, []).append(instance)
    return [
        ServiceView(
            name,
            instances,
            sorted({i.zone for i in instances}),
            sorted({i.zone for i in instances if i.healthy and i.reported_at >= fresh}),
        )
        for name, instances in sorted(by_name.items())
    ]


def host_health(host: str) -> dict[str, Any]:
    """The host's services, alerts and remediation steps, newest first."""
    return {
        "services": list(ServiceInstance.objects.filter(host=host)),
        "alerts": list(AlertRecord.objects.filter(host=host)[:50]),
        "remediations": list(RemediationRecord.objects.filter(host=host)[:50]),
    }
