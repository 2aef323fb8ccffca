"""Every SSH certificate the CAs signed: who, for what, until when, and whether it is revoked."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone

KINDS = ("user", "host")


class Certificate(models.Model):
    """One signed certificate (the certificate itself is not kept: its serial names it)."""

    serial = models.PositiveBigIntegerField(unique=True)
    kind = models.CharField(max_length=8, choices=[(k, k) for k in KINDS])
    key_id = models.CharField(max_length=255)
    principals = models.JSONField(default=list)
    fingerprint = models.CharField(max_length=100)  # of the certified key
    ca_fingerprint = models.CharField(max_length=100)
    source_address = models.CharField(max_length=255, blank=True)
    valid_after = models.DateTimeField()
    valid_before = models.DateTimeField()
    issued_by = models.CharField(max_length=150)
    issued_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-issued_at"]

    def __str__(self) -> str:
        return f"{self.kind} certificate {self.serial} ({self.key_id})"

    @property
    def state(self) -> str:
        """`revoked`, `expired` or `valid`."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.valid_before <= timezone.now() else "valid"
