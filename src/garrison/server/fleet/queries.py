"""Permission-checked reads of the fleet."""

from __future__ import annotations

from django.db.models import QuerySet

from garrison.core.errors import NotFoundError, PermissionDeniedError
from garrison.server.accounts.models import User
from garrison.server.accounts.roles import READ_ALL
from garrison.server.fleet.models import Host


def hosts_visible_to(actor: User) -> QuerySet[Host]:
    """Every host, for those who read fleet-wide data."""
    if actor.role not in READ_ALL:
        raise PermissionDeniedError("your role may not list hosts")
    return Host.objects.all()


def access_host(actor: User, name: str) -> Host:
    """One host by name."""
    host = hosts_visible_to(actor).filter(name=name.lower()).first() if "\x00" not in name else None
    if host is None:
        raise NotFoundError(f"no host named {name!r}")
    return host
