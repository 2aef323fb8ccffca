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


class MetricPoint(models.Model):
    """A host's metrics at one moment: every 10 s for a day (`step` 10, as sent), then one
    point per 5 minutes for 30 days (`step` 300: the mean of each value, and its maximum as
    ``NAME_max``)."""

    host = models.CharField(max_length=253)
    step = models.PositiveIntegerField()
    at = models.DateTimeField()
    values = models.JSONField()

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["host", "step", "at"], name="metric_point_once")
        ]
        indexes: ClassVar[list[models.Index]] = [models.Index(fields=["step", "at"])]


class ServiceInstance(models.Model):
    """One instance of a service, on a host, in a zone, as its agent last reported it."""

    host = models.CharField(max_length=253)
    service = models.CharField(max_length=200)
    zone = models.CharField(max_length=32)
    healthy = models.BooleanField()
    checks = models.JSONField(default=dict)
    changed_at = models.DateTimeField()
    reported_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar[list[str]] = ["service", "zone", "host"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["host", "service"], name="service_instance_once")
        ]


class AlertRecord(models.Model):
    """An alert an agent raised: from when it fired until it resolved."""

    host = models.CharField(max_length=253)
    rule = models.CharField(max_length=200)
    instance = models.CharField(max_length=500, blank=True)
    severity = models.FloatField()
    condition = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    value = models.JSONField(null=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-started_at"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["host", "rule", "instance", "started_at"], name="alert_record_once"
            )
        ]


class RemediationRecord(models.Model):
    """One step of an automatic remediation an agent reported (its store reference is
    unique: read twice, recorded once)."""

    ref = models.CharField(max_length=100, unique=True)
    host = models.CharField(max_length=253)
    subject = models.CharField(max_length=500)
    action = models.CharField(max_length=50, blank=True)
    plan = models.TextField(blank=True)
    outcome = models.CharField(max_length=20)
    detail = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(null=True)
    dry_run = models.BooleanField(default=False)
    at = models.DateTimeField()

    class Meta:
        ordering: ClassVar[list[str]] = ["-at"]
