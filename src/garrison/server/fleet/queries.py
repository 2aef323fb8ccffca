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

    @property
    def silent(self) -> bool:
        """A joined, unrevoked host that sent nothing (not even a health check) for 5 minutes."""
        if self.host.state != "joined":
            return False
        return self.last_seen is None or timezone.now() - self.last_seen > SILENT_AFTER


def fleet_view(actor: User) -> list[HostView]:
    """Every host with its last-seen time, events/s per stream and silent flag."""
    seen = activity.read(settings.PREPARED.data.activity)
    views = []
    for host in hosts_visible_to(actor):
        entry = seen.get(host.name, {})
        raw_seen = entry.get("last_seen")
        last = dt.datetime.fromisoformat(raw_seen) if isinstance(raw_seen, str) else None
        rates = entry.get("events_per_second")
        views.append(HostView(host, last, rates if isinstance(rates, dict) else {}))
    return views


def access_host(actor: User, name: str) -> Host:
    """One host by name."""
    host = hosts_visible_to(actor).filter(name=name.lower()).first() if "\x00" not in name else None
    if host is None:
        raise NotFoundError(f"no host named {name!r}")
    return host
