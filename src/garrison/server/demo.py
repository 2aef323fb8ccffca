"""The one write path for demo data in the control plane: the demo host and its findings."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet

from garrison.core.errors import ConflictError
from garrison.demo import DEMO_HOST, DEMO_ZONE
from garrison.server.findings.models import Finding
from garrison.server.fleet import actions as fleet
from garrison.server.fleet.models import Host


@dataclass(frozen=True)
class Removed:
    """What `do_remove_demo` deleted."""

    findings: int
    hosts: int


def _demo_hosts() -> QuerySet[Host]:
    return Host.objects.filter(name=DEMO_HOST, zone=DEMO_ZONE)


def demo_loaded() -> bool:
    """Whether the demo host is enrolled (the console then says how to remove the demo)."""
    return _demo_hosts().exists()


def do_enroll_demo_host(csr_pem: bytes) -> fleet.Joined:
    """Enrol the made-up demo host (zone ``demo``) from the control plane's shell; refused when
    a real host has its name."""
    if Host.objects.filter(name=DEMO_HOST).exclude(zone=DEMO_ZONE).exists():
        raise ConflictError(
            f"a host of your fleet is named {DEMO_HOST}: the demo would mix with its data",
            hint="the demo needs that name for itself; it cannot run on this control plane",
        )
    return fleet.do_enroll_local_host(DEMO_HOST, csr_pem, zone=DEMO_ZONE)


def do_remove_demo() -> Removed:
    """Delete the demo host and every finding about it (its certificate dies with its key,
    which the CLI deletes; it would expire within `host_cert_minutes` anyway). Nothing is
    deleted unless the host is the demo's (zone ``demo``)."""
    with transaction.atomic():
        hosts = _demo_hosts()
        findings = (
            Finding.objects.filter(host=DEMO_HOST) if hosts.exists() else Finding.objects.none()
        )
        removed = Removed(findings.count(), hosts.count())
        findings.delete()
        hosts.delete()  # and its join tokens
    return removed
