"""Property tests: random and truncated input never raises and always yields one event."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.events.parsers import FORMATS, parse_line, parse_lines
from garrison.events.schema import problems

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "fail2ban-logs"
REF = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SAMPLES = [
    (
        "Feb 25 14:34:10 belka sshd[31602]: Failed password for invalid user ROOT from "
        "194.117.26.69 port 50273 ssh2"
    ),
    '<38>1 2019-07-08T17:40:17.954167-04:00 h sshd 55 - [x y="[b]"] Invalid user a from ::1',
    "srv sshd[1]: Connection closed by authenticating user r 192.0.2.10 port 46038 [preauth]",
    '1.2.3.4 - - [20/Jan/2015:19:53:28 +0100] "GET /x HTTP/1.1" 404 47 "-" "-"',
    (
        '2015/10/29 20:01:02 [error] 2#0: *9 limiting requests, excess: 1.8 by zone "one", '
        'client: 1.2.3.4, server: e, request: "GET / HTTP/1.1", host: "e"'
    ),
]
if DATA.is_dir():
    SAMPLES += [
        line
        for path in sorted(DATA.glob("*.log"))
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

BOUNDED = settings(derandomize=True, max_examples=300, deadline=None, database=None)


def check(format_: str, line: str | bytes) -> None:
    """Exactly one conforming event comes back."""
    events = list(parse_lines(format_, [line], reference_time=REF))
    assert len(events) == 1
    if format_ != "jsonl" or events[0].get("class") == "raw":
        assert problems(events[0]) == [], events[0]


@BOUNDED
@given(st.sampled_from(FORMATS), st.binary(max_size=400))
def test_random_bytes(format_: str, data: bytes) -> None:
    """Arbitrary bytes (invalid UTF-8 included) never raise."""
    check(format_, data)


@BOUNDED
@given(st.sampled_from(FORMATS), st.text(max_size=400))
def test_random_text(format_: str, text: str) -> None:
    """Arbitrary text (newlines, surrogates-free unicode) never raises."""
    check(format_, text)


@BOUNDED
@given(st.sampled_from(("sshd", "nginx")), st.sampled_from(SAMPLES), st.data())
def test_truncated_and_mutated_real_lines(format_: str, line: str, data: st.DataObject) -> None:
    """Real lines cut anywhere, or with a random character spliced in, never raise."""
    cut = data.draw(st.integers(min_value=0, max_value=len(line)))
    check(format_, line[:cut])
    check(format_, line[cut:])
    spliced = line[:cut] + data.draw(st.characters()) + line[cut:]
    check(format_, spliced)


def test_understood_samples_are_not_raw() -> None:
    """Sanity for the property tests: untouched samples are understood."""
    for line in SAMPLES[:5]:
        fmt = "nginx" if line[0].isdigit() else "sshd"
        assert parse_line(fmt, line, reference_time=REF)["class"] != "raw", line
