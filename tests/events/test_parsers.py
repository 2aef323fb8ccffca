"""Parser details: sshd fields, nginx access and error fields, syslog headers, years, jsonl."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from garrison.core.errors import UsageError
from garrison.events.parsers import UnknownFormatError, parse_line, parse_lines
from garrison.events.schema import problems
from garrison.events.syslog import Clock

REF = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def sshd(line: str) -> dict[str, object]:
    """One sshd line parsed against a June 2026 UTC reference."""
    event = parse_line("sshd", line, reference_time=REF)
    assert problems(event) == [], event
    return event


def test_failed_password_invalid_user_ipv6() -> None:
    """Failed password for an invalid user from IPv6: every field is there, the IP compressed."""
    event = sshd(
        "May  3 10:00:01 bastion sshd[4242]: Failed password for invalid user oracle "
        "from 2001:0db8:0000:0000:0000:0000:0000:0001 port 50022 ssh2"
    )
    assert event["time"] == "2026-05-03T10:00:01Z"
    assert event["class"] == "authentication"
    assert event["outcome"] == "failure"
    assert event["host"] == "bastion"
    assert event["process"] == "sshd"
    assert event["pid"] == 4242
    assert event["user"] == "oracle"
    assert event["invalid_user"] is True
    assert event["auth_method"] == "password"
    assert event["src_ip"] == "2001:db8::1"
    assert event["src_port"] == 50022


def test_accepted_publickey_sshd_session() -> None:
    """OpenSSH 9.8+ logs as sshd-session; an accepted key is a success."""
    event = sshd(
        "May  3 10:00:02 bastion sshd-session[77]: Accepted publickey for alice from 192.0.2.9 "
        "port 40000 ssh2: ED25519 SHA256:abc"
    )
    assert event["process"] == "sshd-session"
    assert (event["outcome"], event["user"], event["auth_method"]) == (
        "success",
        "alice",
        "publickey",
    )
    assert event["auth_info"] == "ED25519 SHA256:abc"


@pytest.mark.parametrize(
    ("message", "klass", "outcome", "src"),
    [
        (
            "Invalid user admin from 198.51.100.7 port 1234",
            "authentication",
            "failure",
            "198.51.100.7",
        ),
        (
            (
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
                "rhost=203.0.113.5  user=root"
            ),
            "authentication",
            "failure",
            "203.0.113.5",
        ),
        (
            "Connection closed by invalid user bob 192.0.2.3 port 22 [preauth]",
            "authentication",
            "failure",
            "192.0.2.3",
        ),
        (
            "Disconnected from authenticating user root 192.0.2.4 port 1 [preauth]",
            "authentication",
            "failure",
            "192.0.2.4",
        ),
        ("Disconnected from user root 192.0.2.4 port 1", "authentication", "success", "192.0.2.4"),
        (
            "Did not receive identification string from 192.0.2.5 port 9",
            "network_activity",
            "failure",
            "192.0.2.5",
        ),
        (
            "Unable to negotiate with 192.0.2.6 port 9: no matching cipher found. Their offer: x",
            "network_activity",
            "failure",
            "192.0.2.6",
        ),
        (
            "banner exchange: Connection from 192.0.2.7 port 9: invalid format",
            "network_activity",
            "failure",
            "192.0.2.7",
        ),
        (
            (
                "error: maximum authentication attempts exceeded for root from 192.0.2.8 port 2 "
                "ssh2 [preauth]"
            ),
            "authentication",
            "failure",
            "192.0.2.8",
        ),
        (
            "Connection from ::ffff:192.0.2.10 port 5 on 10.0.0.1 port 22",
            "network_activity",
            "unknown",
            "192.0.2.10",
        ),
    ],
)
def test_sshd_messages(message: str, klass: str, outcome: str, src: str) -> None:
    """The OpenSSH message catalogue maps to class, outcome and source."""
    event = sshd(f"Jun  1 11:00:00 h sshd[9]: {message}")
    assert (event["class"], event["outcome"], event["src_ip"]) == (klass, outcome, src)


def test_user_name_injection_does_not_move_the_source() -> None:
    """A user name carrying 'from IP port N ssh2' leaves the real source in place."""
    event = sshd(
        "Jun  1 11:00:00 h sshd[9]: Failed password for invalid user test from 10.10.1.2 port "
        "55555 ssh2 from 127.0.0.1 port 58946 ssh2"
    )
    assert event["src_ip"] == "127.0.0.1"
    assert event["user"] == "test from 10.10.1.2 port 55555 ssh2"


def test_session_correlation_fills_later_lines() -> None:
    """A later line of the same connection (host, pid) without an address gets it, marked."""
    first, second, other = parse_lines(
        "sshd",
        [
            "Jun  1 11:00:00 h sshd[9]: Connection from 192.0.2.1 port 5 on 10.0.0.1 port 22",
            "Jun  1 11:00:01 h sshd[9]: fatal: Unable to negotiate a key exchange method",
            "Jun  1 11:00:01 h sshd[10]: fatal: Unable to negotiate a key exchange method",
        ],
        reference_time=REF,
    )
    assert "src_inferred" not in first
    assert (second["src_ip"], second["src_inferred"]) == ("192.0.2.1", True)
    assert "src_ip" not in other


def test_other_programs_and_unknown_messages_are_application_logs() -> None:
    """A syslog line that is not an sshd message we know is kept as application_log."""
    event = sshd("Jun  1 11:00:00 h CRON[1]: (root) CMD (true)")
    assert event["class"] == "application_log"
    assert event["message"] == "(root) CMD (true)"
    assert "outcome" not in event


def test_unparseable_line_is_raw_with_reason() -> None:
    """Something that is not a syslog line at all: raw, with a reason, never dropped."""
    event = sshd("hello world")
    assert event["class"] == "raw"
    assert event["reason"]
    assert event["raw"] == "hello world"
    assert event["time_inferred"] is True


def test_rfc5424_header() -> None:
    """RFC 5424 with structured data: time with offset to UTC, host, app, procid."""
    event = sshd(
        '<38>1 2019-07-08T17:40:17.954167-04:00 host.example.com sshd 55555 - [a b="[x]"] '
        "Failed unknown for invalid user redmond from 192.0.2.2 port 55555 ssh2"
    )
    assert event["time"] == "2019-07-08T21:40:17.954167Z"
    assert (event["host"], event["process"], event["pid"]) == ("host.example.com", "sshd", 55555)
    assert event["src_ip"] == "192.0.2.2"


def test_journal_line_takes_the_reference_time() -> None:
    """A journal line has no time: the reference time, flagged as inferred."""
    event = sshd("srv sshd[1]: Invalid user x from 192.0.2.1")
    assert event["time"] == "2026-06-01T12:00:00Z"
    assert event["time_inferred"] is True
    assert event["host"] == "srv"


def test_year_rollover_dec_31_read_on_jan_1() -> None:
    """A Dec 31 line read just after New Year belongs to the previous year."""
    event = parse_line(
        "sshd",
        "Dec 31 23:59:58 h sshd[1]: Invalid user x from 192.0.2.1",
        reference_time=dt.datetime(2027, 1, 1, 0, 5, tzinfo=dt.UTC),
    )
    assert event["time"] == "2026-12-31T23:59:58Z"


def test_year_rollover_jan_1_read_on_dec_31() -> None:
    """A Jan 1 line less than a day ahead of the reference belongs to the next year."""
    clock = Clock(dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC))
    assert clock.bsd("Jan", "1", "00:10:00") == "2027-01-01T00:10:00Z"
    assert clock.bsd("Dec", "31", "22:00:00") == "2026-12-31T22:00:00Z"
    assert clock.bsd("Jun", "1", "00:00:00") == "2026-06-01T00:00:00Z"


def test_year_rollover_in_a_zone() -> None:
    """The year is picked in the configured zone; the result is UTC."""
    zurich = zoneinfo.ZoneInfo("Europe/Zurich")
    clock = Clock(dt.datetime(2027, 1, 1, 0, 30, tzinfo=zurich), "Europe/Zurich")
    assert clock.bsd("Dec", "31", "23:50:00") == "2026-12-31T22:50:00Z"
    assert clock.bsd("Jan", "1", "00:20:00") == "2026-12-31T23:20:00Z"


def test_leap_day_goes_back_to_a_leap_year() -> None:
    """Feb 29 read in 2026 is 2024's."""
    clock = Clock(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    assert clock.bsd("Feb", "29", "12:00:00") == "2024-02-29T12:00:00Z"
    assert clock.bsd("Feb", "30", "12:00:00") is None


def test_nginx_combined() -> None:
    """Combined format: request split, path decoded, status, bytes, referrer, agent, CLF time."""
    event = parse_line(
        "nginx",
        '203.0.113.9 - bob [10/Oct/2026:13:55:36 -0700] "GET /a%20b/../etc?x=%2F HTTP/1.1" 404 '
        '512 "https://ref.example/" "curl/8.0"',
    )
    assert problems(event) == []
    assert event["time"] == "2026-10-10T20:55:36Z"
    assert event["class"] == "http_activity"
    assert event["outcome"] == "failure"
    assert event["src_ip"] == "203.0.113.9"
    assert event["user"] == "bob"
    assert (event["method"], event["path"], event["protocol"]) == (
        "GET",
        "/a%20b/../etc?x=%2F",
        "HTTP/1.1",
    )
    assert event["path_decoded"] == "/a b/../etc?x=/"
    assert (event["status"], event["bytes"]) == (404, 512)
    assert (event["referrer"], event["user_agent"]) == ("https://ref.example/", "curl/8.0")


def test_apache_common_and_garbage_request() -> None:
    """Common format (no referrer/agent) and a request line that is not METHOD PATH PROTO."""
    event = parse_line("nginx", '::1 - - [10/Oct/2026:13:55:36 +0000] "\\x16\\x03\\x01" 400 0')
    assert problems(event) == []
    assert event["src_ip"] == "::1"
    assert event["status"] == 400
    assert "method" not in event
    assert event["request"] == "\\x16\\x03\\x01"


def test_nginx_error_limit_req() -> None:
    """limit_req: the zone, excess, client, request and context fields."""
    event = parse_line(
        "nginx",
        '2026/10/29 20:01:02 [error] 256#0: *99 limiting requests, excess: 1.852 by zone "one", '
        'client: 1.2.3.4, server: example.com, request: "POST /index.htm HTTP/1.0", '
        'host: "example.com", referrer: "https://x/"',
    )
    assert problems(event) == []
    assert event["time"] == "2026-10-29T20:01:02Z"
    assert (event["class"], event["outcome"], event["action"]) == (
        "http_activity",
        "failure",
        "limited",
    )
    assert (event["limit_zone"], event["limit_excess"]) == ("one", 1.852)
    assert (event["src_ip"], event["server"], event["http_host"]) == (
        "1.2.3.4",
        "example.com",
        "example.com",
    )
    assert (event["method"], event["path"], event["referrer"]) == (
        "POST",
        "/index.htm",
        "https://x/",
    )
    assert (event["level"], event["pid"], event["connection"]) == ("error", 256, 99)


def test_nginx_basic_auth_failure() -> None:
    """A basic-auth password mismatch is an authentication failure for the user."""
    event = parse_line(
        "nginx",
        '2026/04/09 11:53:36 [error] 2865#0: *6 user "xyz": password mismatch, client: '
        '192.0.43.10, server: www.myhost.com, request: "GET / HTTP/1.1", host: "www.myhost.com"',
    )
    assert (event["class"], event["outcome"], event["user"]) == ("authentication", "failure", "xyz")


def test_jsonl_kept_with_class() -> None:
    """jsonl: the object kept as is, class added only when missing; non-objects are raw."""
    assert parse_line("jsonl", '{"a": 1}') == {"a": 1, "class": "application_log"}
    assert parse_line("jsonl", '{"class": "api_activity"}') == {"class": "api_activity"}
    assert parse_line("jsonl", "[1]")["class"] == "raw"
    assert parse_line("jsonl", "{nope")["reason"].startswith("not JSON")


def test_invalid_utf8_is_raw() -> None:
    """Bytes that are not UTF-8 become a raw event with backslash escapes, not an exception."""
    event = parse_line("sshd", b"Jun  1 11:00:00 h sshd[9]: \xff\xfe\n")
    assert event["class"] == "raw"
    assert event["reason"].startswith("not UTF-8")
    assert event["raw"].endswith("\\xff\\xfe")


def test_unknown_format() -> None:
    """An unknown format is refused at once."""
    with pytest.raises(UnknownFormatError):
        parse_lines("syslog-ng", [])


def test_apache_is_a_format_name_too() -> None:
    """`--format apache` reads the common and combined formats like nginx does."""
    line = '203.0.113.9 - - [01/Dec/2026:10:00:00 +0000] "GET /x HTTP/1.1" 404 196 "-" "curl/8"'
    event = parse_line("apache", line)
    assert event["class"] == "http_activity"
    assert event["src_ip"] == "203.0.113.9"
    assert event["status"] == 404


def test_regex_format_of_the_operators_own() -> None:
    """Named groups become fields; time is read; lines that do not match are kept raw."""
    spec = r"regex:^(?P<time>\S+) (?P<level>[A-Z]+) (?P<message>.*?)(?: user=(?P<user>\w+))?$"
    event = parse_line(spec, "2026-12-01T10:00:00Z ERROR payment failed user=alice")
    assert event == {
        "time": "2026-12-01T10:00:00Z",
        "class": "application_log",
        "level": "ERROR",
        "message": "payment failed",
        "user": "alice",
        "raw": "2026-12-01T10:00:00Z ERROR payment failed user=alice",
    }
    assert parse_line(spec, "1764583200 INFO ok")["time"] == "2025-12-01T10:00:00Z"
    assert parse_line(spec, "something else")["class"] == "raw"
    assert parse_line(spec, "soon INFO x")["time_inferred"] is True


@pytest.mark.parametrize("spec", ["regex:(", "regex:no groups here"])
def test_regex_format_errors_are_clear(spec: str) -> None:
    """A pattern that does not compile or names no field is refused before any line."""
    with pytest.raises(UsageError):
        parse_line(spec, "x")


def test_a_certificate_then_a_second_method_names_the_person_on_the_login() -> None:
    """The bastion's two methods: sshd logs the certificate on a ``Partial publickey`` line and
    the completed login on the next method's line; the login carries the certificate's key id
    (a wrong code names the person too, and the retry still gets it)."""
    cert = (
        "ED25519-CERT SHA256:UuvTY/vfcy8nzJN9G2+aF1quBb3/ieuatGFgrxYGeFA ID olga (serial 42) "
        "CA ED25519 SHA256:Wwen+7zSCd5yPP6zbDwHM70KbHGKw0ePysIq1kiZ61M"
    )
    head = "2026-12-01T13:15:00+00:00 bastion sshd[77]: "
    events = parse_lines(
        "sshd",
        [
            f"{head}Partial publickey for jump from 10.0.1.2 port 46724 ssh2: {cert}",
            f"{head}Failed keyboard-interactive/pam for jump from 10.0.1.2 port 46724 ssh2",
            f"{head}Accepted keyboard-interactive/pam for jump from 10.0.1.2 port 46724 ssh2",
            f"{head}Accepted keyboard-interactive/pam for jump from 10.0.1.9 port 40000 ssh2",
        ],
    )
    assert [(e["outcome"], e.get("cert_key_id"), e.get("cert_serial")) for e in list(events)] == [
        ("partial", "olga", 42),
        ("failure", "olga", 42),
        ("success", "olga", 42),
        ("success", None, None),  # another connection: nobody's certificate
    ]
