"""Impossible travel: two logins of one account from places too far apart for the time between.

A Sigma rule opts in with a ``garrison.travel`` block; its matches (successful logins) are not
findings by themselves but places and times of an account:

```yaml
garrison:
  travel: {by: user, speed_kmh: 900, min_km: 500}
```

Each login's source address is placed in its country (`garrison.detect.geo`, offline) and the
country at its centre (countryinfo's coordinates). A login from another country than the
account's previous one, at least `min_km` away and not a neighbour (border towns, roaming,
national VPN exits), reached faster than `speed_kmh` (an airliner flies about 900 km/h) is a
jump. Logins from private or unknown addresses place nobody and are left out. An account's
last place is forgotten once no journey could be too fast any more (half the Earth's
circumference at `speed_kmh`), and at most `max_accounts` accounts are remembered (the longest
quiet ones go first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from garrison.detect import geo

EARTH_RADIUS_KM = 6371.0
HALF_CIRCUMFERENCE_KM = math.pi * EARTH_RADIUS_KM
MAX_ACCOUNTS = 100_000


@dataclass(frozen=True)
class Travel:
    """A rule's travel check: which field names the account, and what is too fast."""

    by: str = "user"
    speed_kmh: float = 900.0
    min_km: float = 500.0

    @classmethod
    def from_block(cls, block: object) -> Travel:
        """The check a rule's ``garrison.travel`` mapping describes."""
        if not isinstance(block, dict):
            raise ValueError("garrison.travel must be a mapping (by, speed_kmh, min_km)")
        unknown = set(block) - {"by", "speed_kmh", "min_km"}
        if unknown:
            raise ValueError(f"garrison.travel has unknown keys {sorted(unknown)}")
        travel = cls(
            by=str(block.get("by", "user")),
            speed_kmh=float(block.get("speed_kmh", 900.0)),
            min_km=float(block.get("min_km", 500.0)),
        )
        if travel.speed_kmh <= 0 or travel.min_km < 0:
            raise ValueError("garrison.travel needs speed_kmh above 0 and min_km of at least 0")
        return travel

    @property
    def horizon(self) -> float:
        """Seconds after which any journey is possible: an account's place is then forgotten."""
        return HALF_CIRCUMFERENCE_KM / self.speed_kmh * 3600


@dataclass(frozen=True)
class Place:
    """Where and when an account logged in."""

    when: float
    ip: str
    country: str


@lru_cache(maxsize=512)
def _country(code: str) -> tuple[tuple[float, float] | None, frozenset[str]]:
    """A country's centre (latitude, longitude) and its neighbours' ISO alpha-2 codes."""
    from countryinfo import CountryInfo  # noqa: PLC0415  # loaded with the first login placed
    from countryinfo.exceptions import CountryNotFoundError  # noqa: PLC0415

    try:
        info = CountryInfo(code)
        lat, lon = info.latlng()
        borders = info.borders()
    except (CountryNotFoundError, ValueError, TypeError, KeyError):
        return None, frozenset()
    neighbours = set()
    for alpha3 in borders or []:
        try:
            neighbours.add(str(CountryInfo(alpha3).iso(2)))
        except (CountryNotFoundError, ValueError, TypeError, KeyError):
            continue
    return (float(lat), float(lon)), frozenset(neighbours)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (latitude, longitude) points (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def _jump(check: Travel, before: Place, now: Place) -> dict[str, Any] | None:
    """The journey from `before` to `now` when it is too fast; None when it is possible."""
    if before.country == now.country:
        return None
    (start, neighbours), (end, _) = _country(before.country), _country(now.country)
    if start is None or end is None or now.country in neighbours:
        return None
    km = distance_km(start, end)
    hours = max(now.when - before.when, 1.0) / 3600
    if km < check.min_km or km / hours <= check.speed_kmh:
        return None
    return {
        "from_ip": before.ip,
        "from_country": before.country,
        "to_ip": now.ip,
        "to_country": now.country,
        "distance_km": round(km),
        "hours": round(hours, 2),
        "speed_kmh": round(km / hours),
    }


class TravelState:
    """The last place of each account, per travel rule."""

    def __init__(self, max_accounts: int = MAX_ACCOUNTS) -> None:
        self.max_accounts = max_accounts
        self.places: dict[tuple[str, str], Place] = {}
        self.evicted = 0

    def observe(
        self, rule_id: str, check: Travel, account: str, ip: str, when: float
    ) -> dict[str, Any] | None:
        """Record a login of `account` from `ip` at `when`; the jump when it was too fast."""
        country = geo.locate(ip).get("country", "")
        if not country:
            return None  # a private or unknown address places nobody
        key, now = (rule_id, account), Place(when, ip, country)
        before = self.places.get(key)
        if before is not None and when < before.when:
            before, now = now, before  # a login that arrives late: judge the pair in time order
        elif len(self.places) >= self.max_accounts and before is None:
            self._evict()
        self.places[key] = now
        if before is None or now.when - before.when > check.horizon:
            return None
        return _jump(check, before, now)

    def _evict(self) -> None:
        oldest = sorted(self.places, key=lambda k: self.places[k].when)
        for key in oldest[: max(1, self.max_accounts // 10)]:
            del self.places[key]
            self.evicted += 1

    def sweep(self, watermark: float, horizons: dict[str, float]) -> None:
        """Forget places older than their rule's horizon."""
        for key in [
            k for k, p in self.places.items() if watermark - p.when > horizons.get(k[0], 0.0)
        ]:
            del self.places[key]

    def snapshot(self) -> list[list[Any]]:
        """The places as JSON-ready rows."""
        return [[r, a, p.when, p.ip, p.country] for (r, a), p in self.places.items()]

    def restore(self, rows: list[list[Any]], rule_ids: set[str]) -> None:
        """Places from `snapshot` (those of rules no longer loaded are dropped)."""
        for rule_id, account, when, ip, country in rows:
            if rule_id in rule_ids:
                self.places[(rule_id, account)] = Place(float(when), str(ip), str(country))
