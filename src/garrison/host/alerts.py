"""Alert rules over this host's metrics and services: a condition that holds for a duration.

A rule names a metric of `garrison.host.metrics` (``cpu_percent``, ``mem_used_percent``,
``load_per_core``, ...), one of each disk's (``disk_used_percent``, ``inodes_used_percent``:
one alert per mount), or ``service_up`` (one alert per service, false while it is down), a
comparison and a value. It fires once the condition has held for `for_s` and resolves when it
no longer holds. `DEFAULT_RULES` ship with Garrison; a rule of the same name in the operator's
file replaces one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

SEVERITIES: Final = {"low": 3.0, "medium": 5.0, "high": 7.0, "critical": 9.0}
OPERATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}  # fmt: skip
DISK_METRICS: Final = frozenset({"disk_used_percent", "inodes_used_percent"})
SERVICE_METRIC: Final = "service_up"


@dataclass(frozen=True)
class AlertRule:
    """`metric` `op` `value` for `for_s` seconds: an alert of `severity` (1-10)."""

    name: str
    metric: str
    op: str
    value: float | bool
    for_s: float = 0.0
    severity: float = 5.0
    description: str = ""
    mount: str = ""
    remediation: Any = None  # a `garrison.host.monitor.Runbook`

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"alert {self.name}: op is one of {' '.join(OPERATORS)}")
        if not 1 <= self.severity <= 10:
            raise ValueError(f"alert {self.name}: severity is 1 to 10, low, medium, high, critical")
        if self.metric == SERVICE_METRIC and self.remediation is not None:
            raise ValueError(
                f"alert {self.name}: a service's runbook goes under the service (remediation:), "
                "where it takes its zone's lease"
            )
        if self.mount and self.metric not in DISK_METRICS:
            raise ValueError(f"alert {self.name}: mount applies to {' and '.join(DISK_METRICS)}")

    def values(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        """The metric's value per instance ('' for the host itself, a mount, a service)."""
        if self.metric in DISK_METRICS:
            key = self.metric.removeprefix("disk_")
            return {
                d["mount"]: d.get(key)
                for d in snapshot.get("disks", ())
                if not self.mount or d["mount"] == self.mount
            }
        if self.metric == SERVICE_METRIC:
            return {s["name"]: s["healthy"] for s in snapshot.get("services", ())}
        return {"": snapshot.get(self.metric)}

    def breached(self, value: Any) -> bool:
        """Whether `value` meets the condition (an absent value never does)."""
        return value is not None and bool(OPERATORS[self.op](value, self.value))


DEFAULT_RULES: Final = (
    AlertRule("disk-high", "disk_used_percent", ">", 85, 300, SEVERITIES["medium"],
              "A file system is over 85% full."),
    AlertRule("disk-critical", "disk_used_percent", ">", 95, 60, SEVERITIES["high"],
              "A file system is over 95% full: writes will fail soon."),
    AlertRule("inodes-exhausted", "inodes_used_percent", ">", 90, 300, SEVERITIES["high"],
              "A file system has used over 90% of its inodes: new files will fail."),
    AlertRule("memory-pressure", "mem_used_percent", ">", 90, 300, SEVERITIES["medium"],
              "Over 90% of memory is in use for 5 minutes."),
    AlertRule("load-high", "load_per_core", ">", 4, 600, SEVERITIES["medium"],
              "The load has been over four times the cores for 10 minutes."),
    AlertRule("clock-unsynchronised", "clock_synchronised", "==", False, 900, SEVERITIES["medium"],
              "The clock has not been synchronised (NTP) for 15 minutes: logs and "
              "certificates depend on it."),
    AlertRule("clock-drift", "clock_offset_abs_s", ">", 0.5, 300, SEVERITIES["medium"],
              "The clock is over half a second off its time source for 5 minutes."),
    AlertRule("service-down", SERVICE_METRIC, "==", False, 60, SEVERITIES["high"],
              "A service's health checks have failed (past their N-of-M threshold) for a "
              "minute: its runbook, if any, did not bring it back."),
)  # fmt: skip


@dataclass
class _Instance:
    since: float
    firing: bool = False


@dataclass
class Alerting:
    """Which alerts fire: `evaluate` gives the alerts that began or ended."""

    rules: tuple[AlertRule, ...]
    _state: dict[tuple[str, str], _Instance] = field(default_factory=dict)

    def evaluate(self, snapshot: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
        """Changes since the last evaluation: dicts with rule, instance, state, value."""
        changes = []
        seen = set()
        for rule in self.rules:
            for instance, value in rule.values(snapshot).items():
                key = (rule.name, instance)
                seen.add(key)
                held = self._state.get(key)
                if not rule.breached(value):
                    if held is not None and held.firing:
                        changes.append(_change(rule, instance, value, "resolved", held.since))
                    self._state.pop(key, None)
                    continue
                if held is None:
                    held = self._state[key] = _Instance(now)
                if not held.firing and now - held.since >= rule.for_s:
                    held.firing = True
                    changes.append(_change(rule, instance, value, "firing", held.since))
        for key in [k for k in self._state if k not in seen]:  # a mount or service gone
            held = self._state.pop(key)
            if held.firing:
                rule = next(r for r in self.rules if r.name == key[0])
                changes.append(_change(rule, key[1], None, "resolved", held.since))
        return changes

    def firing(self) -> list[tuple[AlertRule, str]]:
        """The rules and instances firing now."""
        by_name = {r.name: r for r in self.rules}
        return [(by_name[k[0]], k[1]) for k, v in self._state.items() if v.firing]


def _change(rule: AlertRule, instance: str, value: Any, state: str, since: float) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "instance": instance,
        "state": state,
        "metric": rule.metric,
        "value": value,
        "condition": f"{rule.metric} {rule.op} {rule.value}",
        "severity": rule.severity,
        "description": rule.description,
        "since": since,
    }
