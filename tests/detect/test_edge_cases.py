"""Edge cases: bad rule sets, odd field values, out-of-order events, NUL bytes."""

from __future__ import annotations

import json
from pathlib import Path

from garrison.detect.engine import Engine
from tests.detect.helpers import FAILURE_RULE, auth_failure, rule_set, run


def _corr(name: str, refs: list[str], group: str = "src_ip", extra: str = "") -> str:
    return f"""
    title: {name}
    name: {name}
    correlation:
      type: event_count
      rules: {refs}
      group-by: [{group}]
      timespan: 60s
      condition: {{gte: 2}}
      {extra}
    """


def test_a_cycle_drops_only_its_correlations(tmp_path: Path) -> None:
    loaded = rule_set(
        tmp_path, FAILURE_RULE, _corr("a", ["b"]), _corr("b", ["a"]), _corr("fine", ["failure"])
    )
    assert (
        sorted(str(p).split(": ")[-1] for p in loaded.problems)
        == ["correlations refer to each other in a cycle"] * 2
    )
    assert {f.rule.key for f in run(loaded, [auth_failure(0), auth_failure(1)])} == {"fine"}


def test_duplicate_names_and_aliases_are_reported(tmp_path: Path) -> None:
    loaded = rule_set(
        tmp_path,
        FAILURE_RULE,
        FAILURE_RULE.replace("1111-4111", "1212-4121"),
        _corr("aliased", ["failure"], extra="aliases: {ip: {failure: src_ip}}"),
    )
    reasons = " | ".join(str(p) for p in loaded.problems)
    assert "failure is already used by" in reasons
    assert "aliases are not supported" in reasons


def test_placeholders_are_refused_not_matched_as_wildcards(tmp_path: Path) -> None:
    loaded = rule_set(
        tmp_path,
        FAILURE_RULE.replace(
            "sel: {class: authentication, outcome: failure}", "sel: {user|expand: '%admins%'}"
        ),
    )
    assert any("placeholders" in str(p) for p in loaded.problems)


def test_unhashable_group_values_and_bad_numbers(tmp_path: Path) -> None:
    """A list as group value is frozen; NaN and infinity never reach a sum."""
    loaded = rule_set(
        tmp_path,
        FAILURE_RULE,
        _corr("by_lists", ["failure"], group="threat_lists"),
        """
        title: bytes
        name: bytes
        correlation: {type: value_sum, rules: [failure], group-by: [src_ip], timespan: 60s,
                      condition: {field: bytes, gte: 300}}
        """,
    )
    events = [
        auth_failure(s, threat_lists=["tor", "scan"], bytes=b)
        for s, b in [(0, "NaN"), (1, 100), (2, "inf"), (3, 100), (4, 100)]
    ]
    assert {f.rule.key for f in run(loaded, events)} == {"by_lists", "bytes"}
    engine = Engine(loaded)
    for n, event in enumerate(events):
        engine.process(event, n)
    restored = Engine(loaded)
    restored.restore(engine.snapshot())  # and the state survives a snapshot
    assert restored.stats["groups"] == engine.stats["groups"]


def test_out_of_order_events_count_by_their_own_time(tmp_path: Path) -> None:
    """An event from another stream arriving late is placed in time, not at the end."""
    loaded = rule_set(
        tmp_path, FAILURE_RULE, _corr("five", ["failure"]).replace("gte: 2", "gte: 5")
    )
    assert run(loaded, [auth_failure(s) for s in (300, 0, 1, 2, 3)]) == []
    assert len(run(loaded, [auth_failure(s) for s in (300, 301, 299, 302, 298)])) == 1


def test_cloudtrail_fields_group_correlations(tmp_path: Path) -> None:
    loaded = rule_set(
        tmp_path,
        """
        title: api call
        name: call
        logsource: {product: aws, service: cloudtrail}
        detection:
          sel: {eventSource: iam.amazonaws.com}
          condition: sel
        """,
        _corr("calls", ["call"], group="sourceIPAddress"),
    )
    record = {"eventSource": "iam.amazonaws.com", "sourceIPAddress": "198.51.100.1"}
    event = {
        "time": "2026-12-01T10:00:00Z",
        "class": "api_activity",
        "action": "iam:X",
        "raw": json.dumps(record),
    }
    (finding,) = run(loaded, [event, {**event, "time": "2026-12-01T10:00:01Z"}])
    assert finding.group == {"sourceIPAddress": "198.51.100.1"}


def test_cased_keywords_in_a_list_are_found_anywhere(tmp_path: Path) -> None:
    loaded = rule_set(
        tmp_path,
        FAILURE_RULE.replace(
            "sel: {class: authentication, outcome: failure}\n      condition: sel",
            "keywords:\n        '|cased': ['World', 'nothing']\n      condition: keywords",
        ),
    )
    assert loaded.problems == []
    assert len(run(loaded, [auth_failure(0, raw="hello World again")])) == 1
    assert run(loaded, [auth_failure(0, raw="hello world again")]) == []


def test_the_class_and_outcome_index_skips_only_rules_that_cannot_match(
    tmp_path: Path,
) -> None:
    """Rules are skipped by the class and outcome they require, case-insensitively; an event
    whose outcome is not a plain string is judged by the rules themselves."""
    loaded = rule_set(tmp_path, FAILURE_RULE)
    (rule,) = loaded.detections
    assert (rule.classes, rule.outcomes) == (
        frozenset({"authentication"}),
        frozenset({"failure"}),
    )
    assert rule.may_match("Authentication", "FAILURE")
    assert not rule.may_match("authentication", "success")
    assert not rule.may_match("authentication", None)
    assert rule.may_match("authentication", ["failure"])  # not indexed: the predicate decides
    findings = run(loaded, [auth_failure(0, outcome="FAILURE"), auth_failure(1, outcome=None)])
    assert [f.count for f in findings] == [1]
