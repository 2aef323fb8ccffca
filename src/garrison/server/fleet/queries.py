"""Permission-checked reads of the fleet."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from garrison.core.errors import NotFoundError, PermissionDeniedError
from garrison.pipeline import activity
from garrison.server.accounts.models import User
from garrison.server.accounts.roles import READ_ALL
from garrison.server.fleet.models import Host


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
