"""Template context shared by every console page."""

from __future__ import annotations

from django.http import HttpRequest

from garrison import __version__
from garrison.demo import DEMO_HOST

#: The console's sections, in navigation order: (url name, label).
SECTIONS = [
    ("findings:list", "Findings"),
    ("logs:search", "Logs"),
    ("fleet:hosts", "Hosts"),
    ("fleet:services", "Services"),
    ("ssh:page", "SSH"),
    ("console:access", "Access"),
    ("backups:page", "Backups"),
    ("console:trust", "Trust"),
    ("audit:events", "Audit"),
]


def console(request: HttpRequest) -> dict[str, object]:
    """Navigation and version for the layout, and whether demo data is loaded."""
    from garrison.server.demo import demo_loaded  # noqa: PLC0415  # models need the app registry

    signed_in = getattr(request, "user", None) is not None and request.user.is_authenticated
    return {
        "nav_sections": SECTIONS,
        "garrison_version": __version__,
        "demo_loaded": signed_in and demo_loaded(),
        "demo_host": DEMO_HOST,
    }
