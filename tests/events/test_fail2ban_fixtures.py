"""Every annotated line of fail2ban's sshd and nginx samples parses with its source and time.

The ``# failJSON:`` times are local times of fail2ban's test zone (Europe/Zurich), and the
year of a syslog line comes from fail2ban's frozen test clock, 2005-08-14 12:00 local: the
parser is given that zone and that reference time, so the full annotated time (year
included) is compared after converting the event's UTC time back to Zurich local time.
Journal lines carry no time (their event takes the reference time); their annotations have
no ``time`` either.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from garrison.events.parsers import parse_lines
from garrison.events.schema import problems

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
pytestmark = pytest.mark.skipif(
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


CASES = [
    pytest.param(name, *case, id=f"{name}:{case[0]}")
    for name in FILES
    if DATA.is_dir()
    for case in annotated(name)
]


def local_time(event: dict[str, Any]) -> str:
    """The event's time as Zurich local time to the second, like fail2ban's annotations."""
    moment = dt.datetime.fromisoformat(event["time"]).astimezone(ZURICH)
    return moment.replace(tzinfo=None, microsecond=0).isoformat()


def expected_source(note: dict[str, Any]) -> tuple[str, str] | None:
    """The field and value the annotated source must appear as."""
    source = note.get("host") or note.get("ip4") or note.get("ip6")
    if not source:
        return None
    try:
        return "src_ip", str(ipaddress.ip_address(source))
    except ValueError:
        return "src_host", source  # a name, or an address ipaddress refuses (192.030.0.6)


def test_every_file_has_annotations() -> None:
    """The fixtures are really there: hundreds of annotated lines across the files."""
    counts = {name: sum(1 for case in CASES if case.id.startswith(f"{name}:")) for name in FILES}
    assert all(counts.values()), counts
    assert sum(counts.values()) > 300


@pytest.mark.parametrize(("name", "number", "line", "note", "event"), CASES)
def test_annotated_line(
    name: str, number: int, line: str, note: dict[str, Any], event: dict[str, Any]
) -> None:
    """Source, time and outcome as annotated; never raw; the schema holds."""
    assert problems(event) == [], event
    assert event["raw"] == line
    assert event["class"] != "raw", event
    source = expected_source(note)
    if source is not None:
        field, value = source
        assert event.get(field) == value, (field, value, event)
    if "time" in note:
        assert local_time(event) == note["time"], event
    if note.get("match"):
        assert event["class"] in SECURITY_CLASSES, event
        # fail2ban also flags some "Accepted" lines as failures through a cross-line user
        # switching heuristic ("users" in the annotation); the line itself is a success.
        if event["class"] == "authentication" and "users" not in note:
            assert event["outcome"] == "failure", event


def test_odd_address_kept_as_written() -> None:
    """192.030.0.6 is not guessed into an IP (octal or decimal?); it stays in src_host."""
    (event,) = parse_lines(
        "sshd",
        ["Jun 21 16:47:48 h sshd[1]: error: PAM: Authentication failure for x from 192.030.0.6"],
    )
    assert "src_ip" not in event
    assert event["src_host"] == "192.030.0.6"
