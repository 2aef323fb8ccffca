"""Impossible travel: logins of one account placed by country, judged by the speed between."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from garrison.detect import rules
from garrison.detect.engine import Engine
from garrison.detect.travel import Travel, TravelState
from tests.detect.helpers import rule_set

AMSTERDAM, SYDNEY, PARIS = "193.0.6.139", "202.12.29.205", "212.27.48.10"
LOGIN_RULE = """
    title: login
    name: login
    id: 22222222-2222-4222-8222-222222222222
    logsource: {product: linux, service: sshd}
    detection:
      sel: {class: authentication, outcome: success}
      condition: sel
    garrison:
      travel: {by: user}
"""


def login(hour: float, ip: str, user: str = "alice") -> dict[str, Any]:
    """A normalized sshd login at 10:00 + `hour` hours."""
    minutes = round(hour * 60)
    return {
        "time": f"2026-12-01T{10 + minutes // 60:02d}:{minutes % 60:02d}:00Z",
        "class": "authentication",
        "outcome": "success",
        "auth_method": "publickey",
        "process": "sshd",
        "src_ip": ip,
        "user": user,
        "host": "web-1",
    }


@pytest.fixture
def loaded(tmp_path: Path) -> rules.RuleSet:
    return rule_set(tmp_path, LOGIN_RULE)


def feed(engine: Engine, events: list[dict[str, Any]]) -> None:
    for number, event in enumerate(events, start=1):
        engine.process(event, number)


def test_the_finding_tells_the_journey(loaded: rules.RuleSet) -> None:
    engine = Engine(loaded)
    feed(engine, [login(0, AMSTERDAM), login(1, SYDNEY), login(1.5, SYDNEY)])
    (finding,) = engine.all_findings()
    shown = finding.as_dict()
    assert shown["group"] == {
        "user": "alice",
        "from_ip": AMSTERDAM,
        "from_country": "NL",
        "to_ip": SYDNEY,
        "to_country": "AU",
        "distance_km": 14846,
        "hours": 1.0,
        "speed_kmh": 14846,
    }
    assert (shown["src_ip"], shown["country"], shown["user"]) == (SYDNEY, "AU", "alice")
    assert shown["evidence"] == [2]  # the login that could not be, not the ones that could


def test_a_login_arriving_late_is_judged_in_time_order(loaded: rules.RuleSet) -> None:
    engine = Engine(loaded)
    feed(engine, [login(1, SYDNEY), login(0, AMSTERDAM)])
    (finding,) = engine.all_findings()
    assert (finding.group["from_country"], finding.group["to_country"]) == ("NL", "AU")


def test_the_places_survive_a_snapshot(loaded: rules.RuleSet) -> None:
    engine = Engine(loaded)
    feed(engine, [login(0, AMSTERDAM)])
    restored = Engine(loaded)
    restored.restore(engine.snapshot())
    feed(restored, [login(1, SYDNEY)])
    assert len(restored.all_findings()) == 1
    assert restored.stats["travel_accounts"] == 1


def test_places_are_capped_and_forgotten() -> None:
    state, check = TravelState(max_accounts=10), Travel()
    for n in range(25):
        state.observe("r", check, f"user{n}", AMSTERDAM, float(n))
    assert len(state.places) <= 10
    assert state.evicted >= 15
    state.sweep(check.horizon + 100.0, {"r": check.horizon})
    assert state.places == {}


def test_travel_blocks_are_checked(tmp_path: Path) -> None:
    bad = LOGIN_RULE.replace("travel: {by: user}", "travel: {by: user, speed: 5}")
    assert "unknown keys ['speed']" in str(rule_set(tmp_path, bad).problems[0])
    slow = LOGIN_RULE.replace("travel: {by: user}", "travel: {speed_kmh: 0}")
    assert "speed_kmh above 0" in str(rule_set(tmp_path, slow).problems[0])


def test_neighbours_and_same_country_are_never_a_jump(loaded: rules.RuleSet) -> None:
    engine = Engine(loaded)
    feed(engine, [login(0, PARIS), login(0.1, "217.160.0.1"), login(0.2, "217.160.0.1")])
    assert engine.all_findings() == []
