"""The one write path for hosts: add (with a join token), join (first certificate), revoke."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass

from cryptography import x509
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from garrison.core.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from garrison.core.files import replace_private
from garrison.server.accounts.actions import sha256
from garrison.server.accounts.models import User
from garrison.server.accounts.roles import OPERATE
from garrison.server.bootstrap import certificate_authority
from garrison.server.fleet.models import Host, JoinToken, host_validator, zone_validator

JOIN_PREFIX = "grj"


@dataclass(frozen=True)
class Joined:
    """What a host receives when it joins: its certificate chain and the CA to trust."""

    host: Host
    certificate_pem: str
    ca_pem: str


def _require_operator(actor: User | None) -> None:
    # None is the local operator at the CLI of the server's own shell.
    if actor is not None and (not actor.is_active or actor.role not in OPERATE):
        raise PermissionDeniedError("your role may not add or revoke hosts")


def _check(validator: object, value: str, what: str) -> str:
    try:
        validator(value)  # type: ignore[operator]  # Django validators are callables
    except DjangoValidationError as exc:
        raise ValidationError(f"invalid {what} {value!r}: {' '.join(exc.messages)}") from None
    return value


def do_add_host(actor: User | None, *, name: str, zone: str, minutes: int) -> tuple[Host, str]:
    """Register a host and make its one-time join token (returned once, stored as a hash)."""
    _require_operator(actor)
    name = _check(host_validator, name.strip().lower(), "host name")
    zone = _check(zone_validator, zone.strip().lower(), "zone")
    token = f"{JOIN_PREFIX}_{secrets.token_urlsafe(32)}"
    try:
        with transaction.atomic():
            host = Host.objects.create(name=name, zone=zone)
            JoinToken.objects.create(
                host=host,
                token_hash=sha256(token),
                expires_at=timezone.now() + dt.timedelta(minutes=minutes),
            )
    except IntegrityError:
        raise ConflictError(f"a host named {name!r} already exists") from None
    return host, token


def do_join_host(token: str, csr_pem: bytes) -> Joined:
    """Spend a join token: sign the host's key (from its CSR) into a short-lived certificate."""
    now = timezone.now()
    with transaction.atomic():
        row = JoinToken.objects.select_related("host").filter(token_hash=sha256(token)).first()
        if row is None or row.used_at is not None or row.expires_at <= now:
            raise NotFoundError(
                "this join token is unknown, already used or expired",
                hint="run `garrison host add NAME --zone Z` for a new one",
            )
        host = row.host
        if host.revoked_at is not None:
            raise PermissionDeniedError(f"host {host.name} is revoked")
        claimed = JoinToken.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now)
        if claimed != 1:
            raise ConflictError("this join token has just been used")
        ca = certificate_authority(settings.PREPARED)
        chain = ca.sign_client(csr_pem, host.name, settings.GARRISON.host_cert_minutes)
        leaf = x509.load_pem_x509_certificate(chain)
        host.joined_at = now
        host.cert_serial = format(leaf.serial_number, "x")
        host.cert_not_after = leaf.not_valid_after_utc
        host.save(update_fields=["joined_at", "cert_serial", "cert_not_after"])
    ca_pem = ca.cert_path.read_text()
    return Joined(host, chain.decode(), ca_pem)


def do_enroll_local_host(name: str, csr_pem: bytes, zone: str = "local") -> Joined:
    """Enrol a host from the control plane's own shell (`garrison up` for its machine,
    `garrison demo` for the demo host): no token needed."""
    name = _check(host_validator, name, "host name")
    with transaction.atomic():
        host, _ = Host.objects.get_or_create(name=name, defaults={"zone": zone})
        if host.revoked_at is not None:
            raise PermissionDeniedError(f"host {host.name} is revoked")
        ca = certificate_authority(settings.PREPARED)
        chain = ca.sign_client(csr_pem, host.name, settings.GARRISON.host_cert_minutes)
        leaf = x509.load_pem_x509_certificate(chain)
        host.joined_at = host.joined_at or timezone.now()
        host.cert_serial = format(leaf.serial_number, "x")
        host.cert_not_after = leaf.not_valid_after_utc
        host.save(update_fields=["joined_at", "cert_serial", "cert_not_after"])
    return Joined(host, chain.decode(), ca.cert_path.read_text())


def do_revoke_host(actor: User | None, host: Host) -> Host:
    """Revoke a host: the collector refuses its next request; its tokens stop working."""
    _require_operator(actor)
    with transaction.atomic():
        if host.revoked_at is None:
            host.revoked_at = timezone.now()
            host.save(update_fields=["revoked_at"])
        JoinToken.objects.filter(host=host, used_at__isnull=True).update(used_at=timezone.now())
        write_revocations()
    return host


def write_revocations() -> None:
    """Publish revoked host names and serials for the collector (atomic replace)."""
    revoked = Host.objects.filter(revoked_at__isnull=False)
    body = {
        "hosts": sorted(h.name for h in revoked),
        "serials": sorted(h.cert_serial for h in revoked if h.cert_serial),
    }
    replace_private(settings.PREPARED.data.revocations, json.dumps(body).encode())
