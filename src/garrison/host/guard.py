"""The guards around every automatic remediation, and their state across agent restarts.

For each runbook (a subject, such as a service or an alert, and its action) `Guard` keeps the
times it acted within its budget window. It says when the next attempt may run (a capped
exponential backoff on the recent attempts), and opens the circuit breaker when the budget is
spent: from then on nothing runs until a person re-arms it. The state is one JSON file written
atomically, so a restarted agent neither forgets its budget nor closes an open breaker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from garrison.core.files import replace_private


@dataclass(frozen=True)
class Limits:
    """How often a runbook may act: `budget` times per `window_s`, `backoff_s` doubled after
    each recent attempt up to `backoff_max_s`."""

    budget: int = 3
    window_s: float = 3600.0
    backoff_s: float = 10.0
    backoff_max_s: float = 600.0

    def __post_init__(self) -> None:
        if self.budget < 1 or self.window_s <= 0:
            raise ValueError(f"a budget is at least 1 action per window, not {self.budget}")
        if not 0 <= self.backoff_s <= self.backoff_max_s:
            raise ValueError("backoff must be between 0 and backoff_max")


class _Entry(msgspec.Struct):
    attempts: list[float] = msgspec.field(default_factory=list)
    breaker_open: bool = False
    opened_at: float = 0.0


@dataclass
class Guard:
    """The budget, backoff and circuit breaker of every runbook of this host."""

    path: Path
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.path.exists():
            self._entries = msgspec.json.decode(self.path.read_bytes(), type=dict[str, _Entry])

    def _entry(self, key: str) -> _Entry:
        return self._entries.setdefault(key, _Entry())

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_private(self.path, msgspec.json.encode(self._entries))

    def recent(self, key: str, limits: Limits, now: float) -> list[float]:
        """The attempts within the window."""
        return [t for t in self._entry(key).attempts if now - t < limits.window_s]

    def is_open(self, key: str) -> bool:
        """Whether the breaker is open (nothing runs until `rearm`)."""
        return self._entry(key).breaker_open

    def open_breakers(self) -> dict[str, float]:
        """Every open breaker and when it opened."""
        return {k: e.opened_at for k, e in self._entries.items() if e.breaker_open}

    def wait(self, key: str, limits: Limits, now: float) -> float:
        """Seconds until the next attempt may run (0: now)."""
        recent = self.recent(key, limits, now)
        if not recent:
            return 0.0
        delay = min(limits.backoff_s * float(2 ** (len(recent) - 1)), limits.backoff_max_s)
        return max(0.0, max(recent) + delay - now)

    def spent(self, key: str, limits: Limits, now: float) -> bool:
        """Whether the budget of the window is used up."""
        return len(self.recent(key, limits, now)) >= limits.budget

    def record(self, key: str, limits: Limits, now: float) -> None:
        """One attempt now (kept only while it counts)."""
        entry = self._entry(key)
        entry.attempts = [*self.recent(key, limits, now), now]
        self._save()

    def trip(self, key: str, now: float) -> None:
        """Open the breaker."""
        entry = self._entry(key)
        entry.breaker_open, entry.opened_at = True, now
        self._save()

    def rearm(self, key: str) -> bool:
        """Close the breaker and forget the attempts; whether it was open."""
        entry = self._entries.pop(key, None)
        self._save()
        return bool(entry and entry.breaker_open)
