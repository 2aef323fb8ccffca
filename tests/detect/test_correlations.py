"""Correlations in event time: window edges, grouping, chaining, bounded state."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.detect.engine import Engine
from tests.detect.helpers import FAILURE_RULE, auth_failure, rule_set, run


def _count_rule(threshold: int = 5, span: str = "60s", kind: str = "event_count") -> str:
    condition = (
        f"{{gte: {threshold}}}" if kind == "event_count" else f"{{field: user, gte: {threshold}}}"
    )
    return f"""
    title: many failures
    name: many
    id: 66666666-6666-4666-8666-666666666666
    correlation:
      type: {kind}
      rules: [failure]
      group-by: [src_ip]
      timespan: {span}
      condition: {condition}
    level: high
    """


@pytest.mark.parametrize(
    ("seconds", "found"),
    [
        ([0, 10, 20, 30], 0),  # N-1 in the window
        ([0, 10, 20, 30, 40], 1),  # N
        ([0, 10, 20, 30, 60], 1),  # the last exactly at the window's end
        ([0, 15, 30, 45, 60.5], 0),  # N, but spread beyond the window
        ([0, 100, 110, 120, 130, 140], 1),  # an old event falls out, five newer ones count
    ],
    ids=["n-1", "n", "edge", "beyond", "slides"],
)
def test_event_count_window_edges(tmp_path: Path, seconds: list[float], found: int) -> None:
    loaded = rule_set(tmp_path, FAILURE_RULE, _count_rule())
    findings = run(loaded, [auth_failure(s) for s in seconds])
    assert len(findings) == found
    if found:
        (finding,) = findings
        assert finding.group == {"src_ip": "203.0.113.5"}
        assert finding.count == 5


def test_groups_are_separate(tmp_path: Path) -> None:
    """Five failures spread over five sources are five groups of one."""
    loaded = rule_set(tmp_path, FAILURE_RULE, _count_rule())
    assert run(loaded, [auth_failure(s, ip=f"203.0.113.{s}") for s in range(5)]) == []


def test_an_open_finding_grows_instead_of_repeating(tmp_path: Path) -> None:
    """Activity that goes on updates one finding: count, last seen, evidence."""
    loaded = rule_set(tmp_path, FAILURE_RULE, _count_rule())
    (finding,) = run(loaded, [auth_failure(s) for s in range(0, 100, 5)])
    assert finding.count == 20
    assert finding.evidence == list(range(1, 21))  # the window that fired it, then the rest
    data = finding.as_dict()
    assert (data["first_seen"], data["last_seen"]) == (
        "2026-12-01T10:00:00Z",
        "2026-12-01T10:01:35Z",
    )
    assert data["src_ip"] == "203.0.113.5"
    assert data["severity"] == 8.0


def test_replay_order_is_event_time_not_arrival(tmp_path: Path) -> None:
    """Old events replayed now fire exactly as they did live: timestamps decide."""
    loaded = rule_set(tmp_path, FAILURE_RULE, _count_rule())
    spread = [auth_failure(s * 3600) for s in range(5)]  # one an hour, replayed in a burst
    assert run(loaded, spread) == []


def test_value_count_counts_distinct_values_in_the_window(tmp_path: Path) -> None:
    loaded = rule_set(tmp_path, FAILURE_RULE, _count_rule(3, "60s", "value_count"))
    same = [auth_failure(s, user="root") for s in range(10)]
    assert run(loaded, same) == []
    names = [auth_failure(s * 10, user=f"u{s}") for s in range(3)]
    assert len(run(loaded, names)) == 1
    late = [auth_failure(0, user="a"), auth_failure(30, user="b"), auth_failure(61, user="c")]
    assert run(loaded, late) == []


def test_value_sum_and_temporal_ordered(tmp_path: Path) -> None:
    """Bytes summed per source; a success after the correlation fired, in order, in time."""
    loaded = rule_set(
        tmp_path,
        FAILURE_RULE,
        _count_rule(),
        """
        title: success
        name: success
        id: 77777777-7777-4777-8777-777777777777
        logsource: {product: linux, service: sshd}
        detection:
          sel: {class: authentication, outcome: success}
          condition: sel
        """,
        """
        title: success after many failures
        name: then_success
        id: 88888888-8888-4888-8888-888888888888
        correlation:
          type: temporal_ordered
          rules: [many, success]
          group-by: [src_ip]
          timespan: 10m
        level: critical
        """,
        """
        title: many bytes
        name: bytes
        id: 99999999-9999-4999-8999-999999999999
        correlation:
          type: value_sum
          rules: [failure]
          group-by: [src_ip]
          timespan: 1m
          condition: {field: bytes, gte: 1000}
        """,
    )
    failures = [auth_failure(s, bytes=150) for s in range(0, 50, 10)]  # 750 bytes: no sum
    success = {**auth_failure(200), "outcome": "success"}
    found = {f.rule.key for f in run(loaded, [*failures, success])}
    assert found == {"many", "then_success"}
    assert {f.rule.key for f in run(loaded, [success, *failures])} == {"many"}  # wrong order
    late = {**success, "time": "2026-12-01T10:11:00Z"}
    assert {f.rule.key for f in run(loaded, [*failures, late])} == {"many"}  # too late
    heavy = [auth_failure(s, bytes=400) for s in range(3)]
    assert {f.rule.key for f in run(loaded, heavy)} == {"bytes"}


def test_state_is_bounded_and_the_cap_is_counted(tmp_path: Path) -> None:
    """More groups than the cap: the quietest go first, counted; windows that passed are swept."""
    loaded = rule_set(tmp_path, FAILURE_RULE, _count_rule())
    engine = Engine(loaded, max_groups=100)
    for n in range(250):
        engine.process(auth_failure(n * 0.01, ip=f"198.51.{n // 250}.{n % 250}"), n)
    assert engine.stats["groups"] <= 100
    assert engine.stats["groups_evicted"] == 150
    engine.process(auth_failure(3600, ip="192.0.2.1"), 999)
    engine.states[next(iter(engine.states))].sweep(engine.watermark)
    assert engine.stats["groups"] == 1


def test_once_fired_a_count_finding_takes_its_groups_later_events(tmp_path: Path) -> None:
    """Past the threshold, slower activity of the same group still joins the open finding."""
    loaded = rule_set(tmp_path, FAILURE_RULE, _count_rule())
    burst = [auth_failure(s) for s in range(0, 50, 10)]
    trickle = [auth_failure(60 + 30 * n) for n in range(10)]  # 2/min: below 5 in 60 s
    (finding,) = run(loaded, [*burst, *trickle])
    assert finding.count == 15
    late = [auth_failure(60 + 30 * 9 + 3601)]  # after an hour of quiet: a new episode
    assert [f.count for f in run(loaded, [*burst, *trickle, *late])] == [15]
