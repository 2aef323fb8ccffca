"""The fleet-wide remediation limit: one zone of a service at a time, leases that expire."""

from __future__ import annotations

import pytest

from garrison.pipeline.leases import MAX_TTL_S, Leases


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_zone_at_a_time_and_expiry() -> None:
    clock = _Clock()
    leases = Leases(clock)
    assert leases.acquire("api", "zone-a", "api-1", 60) == (True, "")
    assert leases.acquire("api", "zone-a", "api-3", 60)[0], "the same zone: at once"
    granted, why = leases.acquire("api", "zone-b", "api-2", 60)
    assert not granted
    assert "api in zone-a is being remediated by api-" in why
    assert leases.acquire("web", "zone-b", "web-2", 60)[0], "another service: free"
    leases.release("api", "zone-a", "api-2")  # not its lease: nothing given back
    leases.release("api", "zone-a", "api-1")
    assert not leases.acquire("api", "zone-b", "api-2", 60)[0], "api-3 still holds zone-a"
    clock.now += 61
    assert leases.acquire("api", "zone-b", "api-2", 60)[0], "expired"


def test_leases_are_bounded() -> None:
    clock = _Clock()
    leases = Leases(clock)
    leases.acquire("api", "zone-a", "api-1", 10**9)
    (held,) = leases.held()
    assert held["seconds_left"] == MAX_TTL_S
    for service, zone in (("", "a"), ("x" * 201, "a"), ("api", "")):
        with pytest.raises(ValueError, match="1 to 200 characters"):
            leases.acquire(service, zone, "api-1", 60)
