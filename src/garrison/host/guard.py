"""The guards around every automatic remediation, and their state across agent restarts.

For each runbook (a subject, such as a service or an alert rule, and its action) `Guard` keeps
the times it acted within its budget window. It says when the next attempt may run (a capped
exponential backoff on the recent attempts), and opens the circuit breaker when the budget is
spent: from then on nothing runs until a person re-arms it. The state is one JSON file written
atomically, so a restarted agent neither forgets its budget nor closes an open breaker.

A state file that cannot be read is set aside and every runbook is held (`HELD_ALL`, shown as
an open breaker) until someone re-arms ``all``: forgetting the budgets could undo a breaker. A
state that cannot be written (a full disk, where cleanups matter most) is kept in memory,
and the failure logged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from garrison.core.files import replace_private

log = logging.getLogger("garrison.agent")

#: The breaker that holds every runbook while the state file was unreadable.
HELD_ALL = "*"


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


def matches(subject: str, key: str) -> bool:
    """Whether `subject` (``web``, ``disk-high``, ``service:web``, ``all``) names breaker `key`."""
    return subject in {"all", key, key.split(":")[1] if ":" in key else key}


@dataclass
class Guard:
    """The budget, backoff and circuit breaker of every runbook of this host."""

    path: Path
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            self._entries = msgspec.json.decode(raw, type=dict[str, _Entry])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            self.path.rename(aside)
            log.error(
                "agent: remediation state %s is unreadable (%s), kept as %s: every runbook is "
                "held until `garrison agent rearm all`",
                self.path, exc, aside,
            )  # fmt: skip
            self._entries = {HELD_ALL: _Entry(breaker_open=True, opened_at=time.time())}
            self._save()

    def _entry(self, key: str) -> _Entry:
        return self._entries.setdefault(key, _Entry())

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_private(self.path, msgspec.json.encode(self._entries))
        except OSError as exc:
            log.error("agent: cannot save the remediation state %s (kept in memory): %s",
                      self.path, exc)  # fmt: skip

    def recent(self, key: str, limits: Limits, now: float) -> list[float]:
        """The attempts within the window."""
        entry = self._entries.get(key)
        return [t for t in entry.attempts if now - t < limits.window_s] if entry else []

    def is_open(self, key: str) -> bool:
        """Whether the breaker is open (nothing runs until `rearm`)."""
        held = self._entries.get(HELD_ALL)
        entry = self._entries.get(key)
        return bool((held and held.breaker_open) or (entry and entry.breaker_open))

    def open_breakers(self) -> dict[str, float]:
        """Every open breaker and when it opened."""
        return {k: e.opened_at for k, e in dict(self._entries).items() if e.breaker_open}

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
