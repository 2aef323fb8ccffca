"""The agent's watch over its host: health checks on their schedules, metrics, alerts, and
remediation within its guards.

`HostMonitor.tick` runs what is due and returns the events to ship: ``metrics`` snapshots
(with each service's state) every `metrics_every` seconds, and on the ``system`` stream the
changes of check states, alerts that begin or end, and every remediation step.

A runbook acts only when its subject is down past its check's N-of-M threshold (a service) or
its alert fires (a metric held past its duration). Before each attempt: the breaker is closed,
the backoff since the recent attempts has passed, the budget is not spent (spending it opens
the breaker: ``breaker_open``, and nothing runs until a person re-arms it), and for a service
the fleet grants a lease (no two zones of one service are remediated at once; without an
answer, nothing runs, unless the runbook says ``lease: false``). After acting it waits
`grace_s`, then verifies: the service's checks pass, or the alert's condition no longer holds.
In dry-run each step is said and counted, and nothing is done.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from garrison.core.files import replace_private
from garrison.core.redact import redact
from garrison.host import METRICS_STREAM
from garrison.host.alerts import Alerting, AlertRule
from garrison.host.checks import Check, Result, Verdict
from garrison.host.guard import HELD_ALL, Guard, Limits, matches
from garrison.host.metrics import Sampler
from garrison.host.remediate import COMMAND_TIMEOUT, Action, Outcome, reap

log = logging.getLogger("garrison.agent")

METRICS = METRICS_STREAM
#: Checks due in one round run at once, on at most this many threads.
CHECK_THREADS = 8
SYSTEM = "system"


@dataclass(frozen=True)
class Runbook:
    """An action and its guards."""

    action: Action
    limits: Limits = field(default_factory=Limits)
    grace_s: float = 15.0
    dry_run: bool = False
    lease: bool = True


@dataclass
class Service:
    """One instance of a service on this host: its zone, checks and runbook."""

    name: str
    zone: str
    checks: list[tuple[Check, Verdict]]
    remediation: Runbook | None = None
    due: dict[str, float] = field(default_factory=dict)
    last: dict[str, Result] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """Up while every check's verdict is up."""
        return all(v.healthy for _, v in self.checks)

    def state(self) -> dict[str, Any]:
        """As shipped in each metrics snapshot."""
        return {
            "name": self.name,
            "zone": self.zone,
            "healthy": self.healthy,
            "checks": {
                c.name: {
                    "healthy": v.healthy,
                    "detail": redact(self.last[c.name].detail)
                    if c.name in self.last
                    else "not run yet",
                }
                for c, v in self.checks
            },
        }


@dataclass(frozen=True)
class Published:
    """The monitor's state after its last round, for other threads (``/metrics``): replaced
    whole, never changed, so a reader never sees it half-updated."""

    services: tuple[tuple[str, str, bool, tuple[tuple[str, bool], ...]], ...] = ()
    firing: tuple[tuple[str, str, float], ...] = ()
    breakers: tuple[str, ...] = ()
    verifying: tuple[str, ...] = ()

    def gauges(self) -> list[tuple[str, tuple[Any, ...]]]:
        """(family, (labels..., value)) of every gauge."""
        found: list[tuple[str, tuple[Any, ...]]] = []
        for name, zone, healthy, checks in self.services:
            found.append(("services", (name, zone, float(healthy))))
            found += [("checks", (name, check, float(ok))) for check, ok in checks]
        found += [("firing", (rule, where, f"{sev:g}", 1.0)) for rule, where, sev in self.firing]
        found += [("breakers", (subject, 1.0)) for subject in self.breakers]
        found += [("verifying", (subject, 1.0)) for subject in self.verifying]
        return found


class Coordinator(Protocol):
    """The fleet-wide limit: one zone of a service remediated at a time."""

    def acquire(self, service: str, zone: str, ttl_s: float) -> tuple[bool, str]:
        """Whether this host may remediate its instance now; otherwise why not."""

    def release(self, service: str, zone: str) -> None:
        """Done (best effort: the lease expires anyway)."""


@dataclass
class _Pending:
    runbook: Runbook
    verify_at: float
    attempt: int
    service: str = ""
    zone: str = ""


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


class _Rearm(msgspec.Struct):
    subject: str
    by: str


def request_rearm(state: Path, subject: str, by: str) -> Path:
    """Ask the running agent to re-arm `subject`'s breakers (a service or an alert rule)."""
    folder = state / "rearm"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.json"
    replace_private(path, msgspec.json.encode(_Rearm(subject, by)))
    return path


class HostMonitor:
    """Checks, metrics, alerts and remediation of one host."""

    def __init__(
        self,
        services: list[Service],
        rules: tuple[AlertRule, ...],
        state: Path,
        *,
        coordinator: Coordinator | None = None,
        dry_run: bool = False,
        metrics_every: float = 10.0,
        sampler: Sampler | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.services = services
        self.alerting = Alerting(rules)
        self.state = state
        self.guard = Guard(state / "remediation.json")
        self.coordinator = coordinator
        self.dry_run = dry_run
        self.metrics_every = metrics_every
        self.sampler = sampler or Sampler()
        self.clock = clock
        self.snapshot: dict[str, Any] = {}
        self._next_metrics = 0.0
        self._pending: dict[str, _Pending] = {}
        self._deferred: dict[str, str] = {}
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._held_said = False
        self.published = Published()
        self._publish()

    def _publish(self) -> None:
        self.published = Published(
            tuple(
                (s.name, s.zone, s.healthy, tuple((c.name, v.healthy) for c, v in s.checks))
                for s in self.services
            ),
            tuple((r.name, i, r.severity) for r, i in self.alerting.firing()),
            tuple(self.guard.open_breakers()),
            tuple(self._pending),
        )

    # -- one round ------------------------------------------------------------------------

    def tick(self) -> list[tuple[str, dict[str, Any]]]:
        """Run what is due; the (stream, event) pairs to ship."""
        now = self.clock()
        reap()
        self._rearm_requested()
        self._say_held()
        self._run_checks(now)
        if now >= self._next_metrics or not self.snapshot:
            self.snapshot = self.sampler.snapshot()
            self._next_metrics = now + self.metrics_every
            self._emit(METRICS, {"class": "host_metrics", **self._with_services(self.snapshot)})
        for change in self.alerting.evaluate(self._with_services(self.snapshot), now):
            self._emit(SYSTEM, {"class": "host_alert", "message": _alert_text(change), **change})
        self._remediate_all(now)
        self._publish()
        events, self._events = self._events, []
        return events

    def _with_services(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        return {**snapshot, "services": [s.state() for s in self.services]}

    def _emit(self, stream: str, event: dict[str, Any]) -> None:
        self._events.append((stream, {**event, "time": _iso(self.clock())}))

    def _run_checks(self, now: float) -> None:
        """Every check that is due, at once (each bounded by its timeout), then their results
        in the order the health file declares them."""
        due = []
        for service in self.services:
            for check, verdict in service.checks:
                if now >= service.due.get(check.name, 0.0):
                    service.due[check.name] = now + check.interval_s
                    due.append((service, check, verdict))
        if len(due) > 1:
            with ThreadPoolExecutor(min(len(due), CHECK_THREADS), "check") as pool:
                results = list(pool.map(lambda item: item[1].run(), due))
        else:
            results = [check.run() for _, check, _ in due]
        for (service, check, verdict), result in zip(due, results, strict=True):
            service.last[check.name] = result
            was = service.healthy
            if verdict.add(result):
                self._emit(
                    SYSTEM,
                    {
                        "class": "service_health",
                        "message": f"{service.name}: {check.name} "
                        f"{'healthy' if verdict.healthy else 'failing'}",
                        "service": service.name,
                        "zone": service.zone,
                        "check": check.name,
                        "healthy": verdict.healthy,
                        "service_healthy": service.healthy,
                        "was_healthy": was,
                        "detail": redact(result.detail),
                    },
                )

    # -- remediation ----------------------------------------------------------------------

    def _remediate_all(self, now: float) -> None:
        for service in self.services:
            key = f"service:{service.name}"
            if service.remediation is None:
                continue
            if key in self._pending:
                self._verify(key, now, functools.partial(_verify_service, service))
            elif not service.healthy:
                self._attempt(key, service.remediation, now, service.name, service.zone)
            else:
                self._deferred.pop(key, None)
        firing = {f"alert:{r.name}:{i}": r for r, i in self.alerting.firing() if r.remediation}
        for key, rule in firing.items():
            if key in self._pending:
                self._verify(key, now, functools.partial(self._verify_alert, rule, key))
            else:  # one budget, backoff and breaker per rule, whatever mount or instance fires
                self._attempt(key, rule.remediation, now, guard_key=f"alert:{rule.name}")
        for key in [k for k in self._pending if k.startswith("alert:") and k not in firing]:
            self._verify(key, now, lambda: (True, "the alert resolved"))

    def _step(self, key: str, runbook: Runbook, outcome: str, detail: str, **extra: Any) -> None:
        subject, _, instance = key.partition(":")[2].partition(":")
        bad = outcome in {"failed", "breaker_open", "deferred"}
        level = logging.WARNING if bad else logging.INFO
        log.log(level, "agent: remediation of %s: %s: %s", key, outcome, detail)
        self._emit(
            SYSTEM,
            {
                "class": "remediation_activity",
                "message": f"remediation {outcome}: {key}",
                "subject": key,
                "kind": key.split(":", 1)[0],
                "name": subject,
                "instance": instance,
                "action": runbook.action.kind,
                "plan": redact(runbook.action.describe()),
                "outcome": outcome,
                "detail": redact(detail),
                "dry_run": runbook.dry_run or self.dry_run,
                "budget": runbook.limits.budget,
                "window_s": runbook.limits.window_s,
                **extra,
            },
        )

    def _attempt(
        self,
        key: str,
        runbook: Runbook,
        now: float,
        service: str = "",
        zone: str = "",
        *,
        guard_key: str = "",
    ) -> None:
        limits, guarded = runbook.limits, guard_key or key
        if self.guard.is_open(guarded) or self.guard.wait(guarded, limits, now) > 0:
            return
        if self.guard.spent(guarded, limits, now):
            self.guard.trip(guarded, now)
            self._step(
                guarded, runbook, "breaker_open",
                f"{limits.budget} attempts within {limits.window_s:.0f} s did not fix it; "
                f"no more until re-armed (garrison agent rearm {guarded.split(':')[1]})",
            )  # fmt: skip
            return
        if service and runbook.lease and self.coordinator is not None:
            try:
                granted, why = self.coordinator.acquire(service, zone, _lease_seconds(runbook))
            except Exception as exc:  # any failure to ask is a refusal
                granted, why = False, f"the control plane did not answer: {exc}"
            if not granted:
                if self._deferred.get(key) != why:
                    self._step(key, runbook, "deferred", why)
                self._deferred[key] = why
                return
        self._deferred.pop(key, None)
        self.guard.record(guarded, limits, now)
        attempt = len(self.guard.recent(guarded, limits, now))
        if runbook.dry_run or self.dry_run:
            plan = f"would {runbook.action.describe()}"
            self._step(key, runbook, "dry_run", plan, attempt=attempt)
            self._release(service, zone, runbook)
            return
        try:
            outcome = runbook.action.run()
        except Exception as exc:  # an action that raises is a failed attempt, on the record
            log.exception("agent: remediation of %s raised", key)
            outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
        if not outcome.ok:
            self._step(key, runbook, "failed", outcome.detail, attempt=attempt)
            self._release(service, zone, runbook)
            return
        self._step(key, runbook, "acted", outcome.detail, attempt=attempt)
        verify_at = self.clock() + runbook.grace_s  # the grace counts from the action's end
        self._pending[key] = _Pending(runbook, verify_at, attempt, service, zone)

    def _verify(self, key: str, now: float, verify: Callable[[], tuple[bool, str]]) -> None:
        pending = self._pending[key]
        if now < pending.verify_at:
            return
        del self._pending[key]
        ok, detail = verify()
        outcome = "succeeded" if ok else "failed"
        self._step(key, pending.runbook, outcome, detail, attempt=pending.attempt, verified=True)
        self._release(pending.service, pending.zone, pending.runbook)

    def _verify_alert(self, rule: AlertRule, key: str) -> tuple[bool, str]:
        self.snapshot = self.sampler.snapshot()
        instance = key.split(":", 2)[2]
        value = rule.values(self._with_services(self.snapshot)).get(instance)
        if rule.breached(value):
            return False, f"{rule.metric} is still {value} ({rule.op} {rule.value})"
        return True, f"{rule.metric} is {value} now"

    def _release(self, service: str, zone: str, runbook: Runbook) -> None:
        if service and runbook.lease and self.coordinator is not None:
            try:
                self.coordinator.release(service, zone)
            except Exception as exc:  # the lease expires anyway
                log.warning("agent: cannot release the lease of %s: %s", service, exc)

    def _say_held(self) -> None:
        """Once: every runbook is held, the state having been unreadable (a finding)."""
        held = HELD_ALL in self.guard.open_breakers()
        if held and not self._held_said:
            self._emit(
                SYSTEM,
                {
                    "class": "remediation_activity",
                    "message": "remediation held: the state was unreadable",
                    "subject": HELD_ALL,
                    "kind": "all",
                    "name": "all",
                    "plan": "every runbook",
                    "outcome": "breaker_open",
                    "detail": "the remediation state file was unreadable (set aside): every "
                    "runbook is held until `garrison agent rearm all`",
                },
            )
        self._held_said = held

    def _rearm_requested(self) -> None:
        folder = self.state / "rearm"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            try:
                asked = msgspec.json.decode(path.read_bytes(), type=_Rearm)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.error("agent: unreadable re-arm request %s: %s", path, exc)
                path.unlink(missing_ok=True)
                continue
            for key in list(self.guard.open_breakers()):
                if matches(asked.subject, key):
                    self.guard.rearm(key)
                    self._emit(
                        SYSTEM,
                        {
                            "class": "remediation_activity",
                            "message": f"remediation rearmed: {key}",
                            "subject": key,
                            "kind": key.split(":", 1)[0],
                            "name": key.split(":")[1] if ":" in key else "all",
                            "outcome": "rearmed",
                            "detail": f"re-armed by {asked.by}",
                            "rearmed_by": asked.by,
                        },
                    )
            path.unlink(missing_ok=True)


def _lease_seconds(runbook: Runbook) -> float:
    """Long enough for the action, its grace and the verification's checks."""
    return COMMAND_TIMEOUT + runbook.grace_s + 60.0


def _verify_service(service: Service) -> tuple[bool, str]:
    failing = []
    for check, _ in service.checks:
        result = check.run()
        service.last[check.name] = result
        if not result.healthy:
            failing.append(f"{check.name}: {result.detail}")
    if failing:
        return False, "; ".join(failing)
    for _, verdict in service.checks:
        verdict.reset()
    return True, "every check passes"


def _alert_text(change: dict[str, Any]) -> str:
    where = f" on {change['instance']}" if change["instance"] else ""
    return f"alert {change['rule']}{where} {change['state']}: {change['condition']}"
