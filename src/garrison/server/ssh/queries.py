"""Reads of SSH certificates."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from garrison.server.accounts.models import User
from garrison.server.accounts.roles import READ_ALL
from garrison.server.ssh.models import Certificate


def visible_to(actor: User) -> QuerySet[Certificate]:
    """Every certificate for those who read fleet-wide data; one's own for the others."""
    if actor.role in READ_ALL:
        return Certificate.objects.all()
    return Certificate.objects.filter(kind="user", key_id=actor.username)


def revoked_serials() -> list[int]:
    """Serials of revoked user certificates that have not expired (what a KRL must list:
    an expired certificate is refused anyway)."""
    return list(
        Certificate.objects.filter(
            kind="user", revoked_at__isnull=False, valid_before__gt=timezone.now()
        ).values_list("serial", flat=True)
    )


def live_certificates() -> QuerySet[Certificate]:
    """User certificates valid right now (who holds access), soonest to expire first."""
    return Certificate.objects.filter(
        kind="user", revoked_at__isnull=True, valid_before__gt=timezone.now()
    ).order_by("valid_before")
