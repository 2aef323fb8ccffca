"""Template context shared by every console page."""

from __future__ import annotations

from django.http import HttpRequest

from garrison import __version__

#: The console's sections, in navigation order: (url name, label).
SECTIONS = [
    ("findings:list", "Findings"),
    ("logs:search", "Logs"),
    ("fleet:hosts", "Hosts"),
    ("console:access", "Access"),
    ("console:backups", "Backups"),
    ("console:trust", "Trust"),
    ("audit:events", "Audit"),
]


def console(request: HttpRequest) -> dict[str, object]:
    """Navigation and version for the layout."""
    return {"nav_sections": SECTIONS, "garrison_version": __version__}
