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
from typing import Any

import pytest

from garrison.events.parsers import parse_lines
from garrison.events.schema import problems
from tests.events.fail2ban import DATA, FILES, SECURITY_CLASSES, ZURICH, annotated, needs_samples

pytestmark = needs_samples

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
