"""Hosts of the fleet and the one-time tokens they join with."""

from __future__ import annotations

from typing import ClassVar

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

HOST_RE = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
host_validator = RegexValidator(
    HOST_RE, "Use a DNS-style host name: lower-case letters, digits, '-' and dots."
)
zone_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,31}$", "Use 1-32 lower-case letters, digits or '-' for the zone."
)


class Host(models.Model):
    """A server that runs the Garrison agent."""

    name = models.CharField(max_length=253, unique=True, validators=[host_validator])
    zone = models.CharField(max_length=32, validators=[zone_validator])
    created_at = models.DateTimeField(default=timezone.now)
    joined_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    cert_serial = models.CharField(max_length=64, blank=True)
    cert_not_after = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["zone", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def state(self) -> str:
        """`revoked`, `joined` or `waiting` (for its join token to be used)."""
        if self.revoked_at:
            return "revoked"
        return "joined" if self.joined_at else "waiting"


class JoinToken(models.Model):
    """A one-time, expiring token a new host presents once to get its first certificate."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="join_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
