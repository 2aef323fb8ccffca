"""The built-in catalog: every rule's own cases pass; every alerting rule has both kinds."""

from __future__ import annotations

import collections
import datetime as dt
import re
from typing import Any

import pytest

from garrison.detect import rules
from garrison.detect.engine import Engine
from garrison.detect.ruletest import run_case
from tests.events.fail2ban import FILES, annotated, needs_samples

CATALOG = rules.load()
CASES = [
    pytest.param(rule, case, id=f"{rule.key}: {case.get('name')}")
    for rule in CATALOG.rules
    for case in rule.tests
]


def test_the_catalog_loads_without_problems() -> None:
    assert CATALOG.problems == []
    assert len(CATALOG.rules) >= 20


@pytest.mark.parametrize(("rule", "case"), CASES)
def test_case(rule: rules.Rule, case: dict[str, object]) -> None:
    result = run_case(CATALOG, rule, case)
    assert result.passed, result


def test_every_alerting_rule_has_positive_and_negative_cases() -> None:
    kinds: dict[str, set[bool]] = collections.defaultdict(set)
    for rule in CATALOG.rules:
        for case in rule.tests:
            kinds[rule.key].add(int(str(case.get("expect", 1))) > 0)
    alerting = [r.key for r in CATALOG.rules if r.generate]
    assert {key: kinds.get(key, set()) for key in alerting} == {
        key: {True, False} for key in alerting
    }


def test_every_alerting_rule_says_what_to_do() -> None:
    for rule in CATALOG.rules:
        if rule.generate:
            assert rule.description, rule.key
            assert rule.remediation, rule.key
            assert re.fullmatch(r"\w+:[\w-]+/[\w.]+", rule.finding_type), rule.key
            assert 1 <= rule.severity <= 10, rule.key


@needs_samples
@pytest.mark.parametrize("name", list(FILES))
def test_every_source_fail2ban_bans_is_counted_by_a_brute_force_detection(name: str) -> None:
    """fail2ban's annotated failures: each source's line, repeated as a brute force would,
    opens a finding naming that source (in the sshd samples, the fast brute force)."""
    cases = [(line, note, event) for _, line, note, event in annotated(name) if note.get("match")]
    missed = []
    for line, note, event in cases:  # events parsed in file order (sshd lines correlated)
        source = note.get("host") or note.get("ip4") or note.get("ip6")
        findings = _findings_when_repeated(event)
        if not any(source in (f.get("src_ip"), f.get("src_host")) for f in findings):
            missed.append(line)
    assert [line for line in missed if not any(known in line for known in NOT_COUNTED)] == []


#: Lines fail2ban counts and Garrison deliberately does not, on their own:
NOT_COUNTED = (
    # pam_unix repeats the attempt that sshd logs next as "Failed password": counting both would
    # double every attempt (and flag offices whose users mistype twice).
    "pam_unix(sshd:auth): authentication failure",
    # A connection closed outside authentication (fail2ban's ddos mode) is no failed login.
    "Connection closed by 192.0.2.15 port 35352",
)


def _findings_when_repeated(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The line 30 times within a minute, as a source fail2ban bans would send it."""
    engine = Engine(CATALOG)
    start = dt.datetime.fromisoformat(event["time"])
    for n in range(30):
        moment = (start + dt.timedelta(seconds=2 * n)).isoformat().replace("+00:00", "Z")
        engine.process({**event, "time": moment}, n)
    return [f.as_dict() for f in engine.all_findings()]
