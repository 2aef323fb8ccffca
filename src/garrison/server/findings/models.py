"""Findings of the detector, kept current by id (an upsert per change)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

STATUSES = ("active", "archived", "suppressed")


class Finding(models.Model):
    """Activity one rule found for one actor, with its evidence in the log store."""

    finding_id = models.CharField(max_length=40, unique=True)
    type = models.CharField(max_length=200)
    severity = models.FloatField()
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    remediation = models.TextField(blank=True)
    rule = models.CharField(max_length=200)
    src = models.CharField(max_length=255, blank=True)
    country = models.CharField(max_length=2, blank=True)
    asn = models.CharField(max_length=255, blank=True)
    user = models.CharField(max_length=255, blank=True)
    host = models.CharField(max_length=255, blank=True)
    group = models.JSONField(default=dict)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.PositiveIntegerField()
    evidence = models.JSONField(default=list)
    status = models.CharField(max_length=16, default="active", choices=[(s, s) for s in STATUSES])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-last_seen"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["-last_seen"]),
            models.Index(fields=["status", "-severity"]),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.src or self.host}"

    @property
    def severity_label(self) -> str:
        """GuardDuty's name for the severity."""
        from garrison.detect.rules import severity_label  # noqa: PLC0415  # engine-side helper

        return severity_label(self.severity)


class Suppression(models.Model):
    """New findings of a type (and, when given, a source or host) are stored suppressed until
    the rule expires: known and accepted activity, with the reason on record."""

    public_id = models.CharField(max_length=40, unique=True)
    type = models.CharField(max_length=200)
    src = models.CharField(max_length=255, blank=True)
    host = models.CharField(max_length=255, blank=True)
    reason = models.CharField(max_length=500)
    expires_at = models.DateTimeField()
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.src or '*'} {self.host or '*'}"
