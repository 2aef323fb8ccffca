"""fail2ban's annotated sample logs (``# failJSON:`` lines), parsed as fail2ban's tests read them.

The annotation times are local times of fail2ban's test zone (Europe/Zurich) and the year of a
syslog line comes from fail2ban's frozen test clock, 2005-08-14 12:00 local.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from garrison.events.parsers import parse_lines

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "fail2ban-logs"
ZURICH = zoneinfo.ZoneInfo("Europe/Zurich")
REFERENCE = dt.datetime(2005, 8, 14, 12, 0, tzinfo=ZURICH)
FILES = {
    "sshd.log": "sshd",
    "sshd-journal.log": "sshd",
    "nginx-bad-request.log": "nginx",
    "nginx-botsearch.log": "nginx",
    "nginx-forbidden.log": "nginx",
    "nginx-http-auth.log": "nginx",
    "nginx-limit-req.log": "nginx",
}
SECURITY_CLASSES = {"authentication", "network_activity", "http_activity"}

# The samples live in the project's shared/ folder beside the checkout; CI always has it, so
# there a missing folder is a failure, not a skip.
needs_samples = pytest.mark.skipif(
    not DATA.is_dir() and os.environ.get("CI") != "true", reason=f"sample logs not found at {DATA}"
)


def annotated(name: str) -> list[tuple[int, str, dict[str, Any], dict[str, Any]]]:
    """(line number, line, annotation, event) for each annotated line, parsed in file order."""
    lines: list[tuple[int, str, dict[str, Any] | None]] = []
    pending: dict[str, Any] | None = None
    for number, line in enumerate((DATA / name).read_text().splitlines(), start=1):
        if line.startswith("# failJSON:"):
            pending = json.loads(line.removeprefix("# failJSON:"))
        elif line.strip() and not line.startswith("#"):
            lines.append((number, line, pending))
            pending = None
    events = list(
        parse_lines(FILES[name], [x[1] for x in lines], reference_time=REFERENCE, zone=ZURICH)
    )
    return [
        (number, line, note, event)
        for (number, line, note), event in zip(lines, events, strict=True)
        if note is not None
    ]
