"""Sigma matching as the specification says, on Garrison events; SigmaHQ-style rules unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.detect.helpers import rule_set, run


def _rule(detection: str, logsource: str = "{product: linux, service: sshd}") -> str:
    body = "\n".join("      " + line for line in detection.strip().splitlines())
    return f"""
    title: probe
    name: probe
    id: 22222222-2222-4222-8222-222222222222
    logsource: {logsource}
    detection:
{body}
    level: high
    """


def _ssh(**fields: Any) -> dict[str, Any]:
    event = {"time": "2026-12-01T10:00:00Z", "class": "authentication", "process": "sshd"}
    event.update(fields)
    event.setdefault("raw", "Dec  1 10:00:00 web-1 sshd[1]: " + json.dumps(fields))
    return event


CASES = [
    # (detection, event fields, matches)
    ("sel: {user: ROOT}\ncondition: sel", {"user": "root"}, True),  # case-insensitive
    ("sel: {user|cased: ROOT}\ncondition: sel", {"user": "root"}, False),
    ("sel: {user|contains: dmi}\ncondition: sel", {"user": "admin"}, True),
    ("sel: {user|startswith: adm}\ncondition: sel", {"user": "admin"}, True),
    ("sel: {user|endswith: adm}\ncondition: sel", {"user": "admin"}, False),
    ("sel: {user: 'a?m*'}\ncondition: sel", {"user": "admin"}, True),
    ("sel: {user: 'a\\*'}\ncondition: sel", {"user": "a*"}, True),  # an escaped wildcard
    ("sel: {user: 'a\\*'}\ncondition: sel", {"user": "ab"}, False),
    ("sel: {user: [bob, alice]}\ncondition: sel", {"user": "alice"}, True),  # a list is an OR
    ("sel: {user|contains|all: [ad, in]}\ncondition: sel", {"user": "admin"}, True),
    ("sel: {user|contains|all: [ad, xx]}\ncondition: sel", {"user": "admin"}, False),
    ("sel: {src_port: 22}\ncondition: sel", {"src_port": 22}, True),
    ("sel: {src_port: 22}\ncondition: sel", {"src_port": "22"}, True),  # numbers by value
    ("sel: {src_port|gte: 1024}\ncondition: sel", {"src_port": 4711}, True),
    ("sel: {src_port|lt: 1024}\ncondition: sel", {"src_port": 4711}, False),
    ("sel: {src_ip|cidr: 10.0.0.0/8}\ncondition: sel", {"src_ip": "10.1.2.3"}, True),
    ("sel: {src_ip|cidr: 10.0.0.0/8}\ncondition: sel", {"src_ip": "11.1.2.3"}, False),
    ("sel: {src_ip|cidr: '2001:db8::/32'}\ncondition: sel", {"src_ip": "2001:db8::1"}, True),
    ("sel: {user|re: '^ad.+n$'}\ncondition: sel", {"user": "admin"}, True),
    ("sel: {user|re: 'ADMIN'}\ncondition: sel", {"user": "admin"}, False),  # regex is cased
    ("sel: {user|re|i: 'ADMIN'}\ncondition: sel", {"user": "admin"}, True),
    ("sel: {user|exists: true}\ncondition: sel", {"user": "x"}, True),
    ("sel: {user|exists: false}\ncondition: sel", {}, True),
    ("sel: {user: null}\ncondition: sel", {}, True),
    ("sel: {user: null}\ncondition: sel", {"user": "x"}, False),
    ("sel: {invalid_user: true}\ncondition: sel", {"invalid_user": True}, True),
    ("sel: {tcp_flags: SYN}\ncondition: sel", {"tcp_flags": ["ACK", "SYN"]}, True),  # lists
    ("sel: {details.reason: revoked}\ncondition: sel", {"details": {"reason": "revoked"}}, True),
    ("keywords: ['libcrypto']\ncondition: keywords", {"message": "error in libcrypto"}, True),
    (
        "keywords: ['absent', 'in libcr']\ncondition: keywords",
        {"message": "error in libcrypto"},
        True,
    ),
    ("a: {user: x}\nb: {user: y}\ncondition: 1 of a or b", {"user": "y"}, True),
    (
        "s1: {user: x}\ns2: {src_port: 22}\ncondition: all of s*",
        {"user": "x", "src_port": 22},
        True,
    ),
    ("s1: {user: x}\ns2: {src_port: 22}\ncondition: all of s*", {"user": "x"}, False),
    (
        "s: {user: x}\nf: {src_port: 22}\ncondition: s and not f",
        {"user": "x", "src_port": 22},
        False,
    ),
]


@pytest.mark.parametrize(("detection", "fields", "matches"), CASES)
def test_matching(tmp_path: Path, detection: str, fields: dict[str, Any], matches: bool) -> None:
    """Each Sigma construct on one event."""
    loaded = rule_set(tmp_path, _rule(detection))
    assert loaded.problems == []
    assert bool(run(loaded, [_ssh(**fields)])) is matches


def test_sigmahq_webserver_fields_map_to_raw_and_decoded_paths(tmp_path: Path) -> None:
    """A SigmaHQ-shaped webserver rule (cs-uri-query, sc-status, c-ip) runs as written."""
    loaded = rule_set(
        tmp_path,
        """
        title: Apache path traversal (CVE-2021-41773 shape)
        id: 33333333-3333-4333-8333-333333333333
        status: test
        logsource:
            category: webserver
        detection:
            selection:
                cs-uri-query|contains:
                    - '/cgi-bin/.%2e/'
                    - '/icons/.%2e/'
            selection_status:
                sc-status:
                    - 200
                    - 400
            filter_local:
                c-ip|cidr: '127.0.0.0/8'
            condition: all of selection* and not filter_local
        level: high
        """,
    )
    assert loaded.problems == []
    hit = {
        "time": "2026-12-01T10:00:00Z",
        "class": "http_activity",
        "src_ip": "203.0.113.9",
        "status": 400,
        "path": "/cgi-bin/.%2e/.%2e/etc/passwd",
        "path_decoded": "/cgi-bin/../../etc/passwd",
        "raw": "-",
    }
    assert len(run(loaded, [hit])) == 1
    assert run(loaded, [{**hit, "src_ip": "127.0.0.1"}]) == []
    assert run(loaded, [{**hit, "status": 404}]) == []


def test_sigmahq_cloudtrail_fields_read_the_original_record(tmp_path: Path) -> None:
    """eventSource, eventName and userIdentity.type come from the CloudTrail record itself."""
    loaded = rule_set(
        tmp_path,
        """
        title: CloudTrail logging stopped
        id: 44444444-4444-4444-8444-444444444444
        logsource:
            product: aws
            service: cloudtrail
        detection:
            selection:
                eventSource: cloudtrail.amazonaws.com
                eventName:
                    - StopLogging
                    - DeleteTrail
            filter:
                userIdentity.type: AWSService
            condition: selection and not filter
        level: high
        """,
    )
    record = {
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "StopLogging",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/mallory"},
    }
    event = {
        "time": "2026-12-01T10:00:00Z",
        "class": "api_activity",
        "action": "cloudtrail.amazonaws.com:StopLogging",
        "raw": json.dumps(record),
    }
    assert len(run(loaded, [event])) == 1
    service = {**record, "userIdentity": {"type": "AWSService"}}
    assert run(loaded, [{**event, "raw": json.dumps(service)}]) == []


def test_rules_only_see_their_logsource(tmp_path: Path) -> None:
    """An sshd rule ignores a web event with the same fields, and the other way round."""
    loaded = rule_set(tmp_path, _rule("sel: {user: root}\ncondition: sel"))
    web = {"time": "2026-12-01T10:00:00Z", "class": "http_activity", "user": "root", "raw": "-"}
    assert run(loaded, [web]) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("title: [unclosed", "while parsing"),
        (_rule("sel: {user: x}\ncondition: sel", "{category: process_creation}"), "logsource"),
        (_rule("sel: {user|nosuchmod: x}\ncondition: sel"), "nosuchmod"),
        (_rule("sel: {user: x}\ncondition: sel and missing"), "missing"),
        (
            """
            title: counts nothing
            correlation: {type: event_count, rules: [nothing], group-by: [src_ip], timespan: 1m,
                          condition: {gte: 2}}
            """,
            "nothing",
        ),
    ],
    ids=["yaml", "logsource", "modifier", "identifier", "reference"],
)
def test_a_bad_rule_is_reported_with_its_file_and_reason_and_skipped(
    tmp_path: Path, text: str, reason: str
) -> None:
    """Never silently: the rule set names the file and the reason; other rules still load."""
    good = _rule("sel: {user: x}\ncondition: sel").replace("name: probe", "name: good")
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "good.yml").write_text(good.replace("2222-4222", "5555-4555"))
    (folder / "bad.yml").write_text(text)
    from garrison.detect import rules  # noqa: PLC0415

    loaded = rules.load([folder], catalog=False)
    assert [r.key for r in loaded.rules] == ["good"]
    assert len(loaded.problems) == 1
    problem = str(loaded.problems[0])
    assert "bad.yml" in problem
    assert reason in problem
