"""Reads of SSH certificates."""

from __future__ import annotations

from django.utils import timezone

from garrison.server.ssh.models import Certificate


def revoked_serials() -> list[int]:
    """Serials of revoked user certificates that have not expired (what a KRL must list:
    an expired certificate is refused anyway)."""
    return list(
        Certificate.objects.filter(
            kind="user", revoked_at__isnull=False, valid_before__gt=timezone.now()
        ).values_list("serial", flat=True)
    )
