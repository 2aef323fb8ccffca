"""The one write path for demo data in the control plane: the demo host and its findings."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from garrison.demo import DEMO_HOST, DEMO_ZONE
from garrison.server.findings.models import Finding
from garrison.server.fleet import actions as fleet
from garrison.server.fleet.models import Host


@dataclass(frozen=True)
class Removed:
    """What `do_remove_demo` deleted."""

    findings: int
    hosts: int


def demo_loaded() -> bool:
    """Whether the demo host is enrolled (the console then says how to remove the demo)."""
    return Host.objects.filter(name=DEMO_HOST).exists()


def do_enroll_demo_host(csr_pem: bytes) -> fleet.Joined:
    """Enrol the made-up demo host (zone ``demo``) from the control plane's shell."""
    return fleet.do_enroll_local_host(DEMO_HOST, csr_pem, zone=DEMO_ZONE)


def do_remove_demo() -> Removed:
    """Delete the demo host and every finding about it (its certificate dies with its key,
    which the CLI deletes; it would expire within `host_cert_minutes` anyway)."""
    with transaction.atomic():
        findings = Finding.objects.filter(host=DEMO_HOST)
        hosts = Host.objects.filter(name=DEMO_HOST)
        removed = Removed(findings.count(), hosts.count())
        findings.delete()
        hosts.delete()  # and its join tokens
    return removed
