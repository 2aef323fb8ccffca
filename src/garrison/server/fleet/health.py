"""The `monitor` role: the fleet's health in the control plane's database, from what the agents
ship (metrics snapshots on ``metrics``; check states, alerts and remediation steps on
``system``).

- Metrics history: each snapshot is a point (10 s); complete 5-minute buckets are rolled up
  (mean and maximum of each value); points are kept a day, rollups 30 days. A late point (an
  agent that was cut off ships its spool) rolls its bucket up again.
- Services: every instance's last reported state, by host, service and zone.
- Findings: an alert that fires; a runbook whose circuit breaker opened (a person must look,
  then re-arm); a service with healthy instances in fewer than two zones (claim P1); an agent
  silent for `agent_silent_minutes`. Each has a stable id, so reading a record twice or
  re-evaluating changes nothing, and new ones are announced like the detector's.

Positions and open episodes are checkpointed atomically after the database commits: after a
crash the records since are read again, and every write is an upsert.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from django.db import DatabaseError, transaction
from django.db.models import Max

from garrison.core.files import replace_private
from garrison.demo import DEMO_HOST
from garrison.detect.notify import Notifier
from garrison.detect.rules import severity_label
from garrison.logstore.store import Store
from garrison.server.findings.sink import DatabaseSink, clean
from garrison.server.fleet import queries
from garrison.server.fleet.models import (
    AlertRecord,
    Host,
    MetricPoint,
    RemediationRecord,
    ServiceInstance,
)

log = logging.getLogger("garrison.monitor")

STREAMS = ("metrics", "system")
BATCH = 2000
RAW_STEP, ROLLUP_STEP = 10, 300
RAW_KEEP, ROLLUP_KEEP = dt.timedelta(days=1), dt.timedelta(days=30)
MAINTAIN_SECONDS = 10.0
#: Values kept from each snapshot (plus the fullest disk's percentages).
SERIES = (
    "cpu_percent", "load_1", "load_per_core", "mem_used_percent", "swap_used_percent",
    "processes", "open_files", "disk_read_bytes_per_s", "disk_write_bytes_per_s",
    "net_recv_bytes_per_s", "net_sent_bytes_per_s",
)  # fmt: skip
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class _State(msgspec.Struct):
    offsets: dict[str, int] = msgspec.field(default_factory=dict)
    rolled_until: float = 0.0
    single_zone: dict[str, str] = msgspec.field(default_factory=dict)
    silent: dict[str, str] = msgspec.field(default_factory=dict)


def _moment(value: Any) -> dt.datetime:
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _floor(moment: dt.datetime, step: int) -> dt.datetime:
    return _moment(int(moment.timestamp()) // step * step)


def series(snapshot: dict[str, Any]) -> dict[str, float]:
    """The values of a snapshot that are charted and kept."""
    found = {k: float(snapshot[k]) for k in SERIES if isinstance(snapshot.get(k), (int, float))}
    disks = [d for d in snapshot.get("disks", ()) if isinstance(d, dict)]
    if disks:
        found["disk_used_percent"] = max(float(d.get("used_percent") or 0) for d in disks)
        found["inodes_used_percent"] = max(float(d.get("inodes_used_percent") or 0) for d in disks)
    return found


def _count(value: Any) -> int | None:
    """A non-negative attempt number, or None."""
    return value if isinstance(value, int) and 0 <= value < 2**31 else None


def _finding_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _finding(
    key: tuple[str, ...],
    *,
    type_: str,
    severity: float,
    title: str,
    description: str,
    remediation: str,
    host: str,
    first_seen: str,
    last_seen: str,
    evidence: list[str],
    group: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": _finding_id(*key),
        "type": type_,
        "severity": severity,
        "severity_label": severity_label(severity),
        "title": title,
        "description": description,
        "remediation": remediation,
        "rule": f"garrison.monitor.{type_.rsplit('/', 1)[-1]}",
        "host": host,
        "group": group,
        "first_seen": first_seen,
        "last_seen": last_seen,
        "count": 1,
        "evidence": evidence,
    }


class FleetMonitor:
    """Follows the agents' health records into the database and the fleet's findings."""

    def __init__(
        self,
        store: Store,
        state_path: Path,
        *,
        sink: DatabaseSink | None = None,
        notifier: Notifier | None = None,
        silent_after: dt.timedelta = dt.timedelta(minutes=5),
    ) -> None:
        self.store = store
        self.state_path = state_path
        self.sink = sink or DatabaseSink()
        self.notifier = notifier
        self.silent_after = silent_after
        self.state = (
            msgspec.json.decode(state_path.read_bytes(), type=_State)
            if state_path.exists()
            else _State()
        )
        self._dirty_buckets: set[tuple[str, dt.datetime]] = set()
        self._maintained = 0.0

    # -- reading -------------------------------------------------------------------------

    def step(self, now: dt.datetime | None = None) -> int:
        """Read the next records, write what they say, and maintain every 10 s; how many.

        The positions move only once the records' writes are committed; a record that cannot
        be written (malformed, out of range) is skipped alone, logged, inside its savepoint.
        While a stream is behind (a full batch read), zones and silent agents are not judged:
        the instances' states are still those of the past."""
        read = 0
        behind = False
        findings: list[dict[str, Any]] = []
        names = set(self.store.stream_names())
        offsets = dict(self.state.offsets)
        with transaction.atomic():
            for name in STREAMS:
                if name not in names:
                    continue
                records = self.store.stream(name).read(offsets.get(name, 0), BATCH)
                for record in records:
                    findings += self._record(record.payload, f"{name}:{record.offset}")
                if records:
                    offsets[name] = records[-1].offset + 1
                    read += len(records)
                    behind = behind or len(records) == BATCH
        self.state.offsets = offsets
        if time.monotonic() - self._maintained >= MAINTAIN_SECONDS or now is not None:
            findings += self.maintain(now or dt.datetime.now(dt.UTC), judge=not behind)
            self._maintained = time.monotonic()
        if findings:
            self._announce(findings)
        if read or findings:
            self.checkpoint()
        return read

    def _announce(self, findings: list[dict[str, Any]]) -> None:
        created = set(self.sink.upsert(findings))
        new = [f for f in findings if f["id"] in created]
        for f in new:
            log.warning("monitor: %s", f["title"])
        if self.notifier is not None and new:
            self.notifier.notify(new)

    def checkpoint(self) -> None:
        """Make the positions and episodes durable (after the database)."""
        replace_private(self.state_path, msgspec.json.encode(self.state))

    def _record(self, payload: bytes, ref: str) -> list[dict[str, Any]]:
        try:
            event = clean(_decode(payload))
        except msgspec.DecodeError as exc:
            log.error("monitor: %s is not JSON (%s); skipped", ref, exc)
            return []
        kind, host = event.get("class"), str(event.get("host", ""))
        handlers: dict[str, Callable[[str, dict[str, Any], str], list[dict[str, Any]]]] = {
            "host_metrics": self._metrics,
            "host_alert": self._alert,
            "remediation_activity": self._remediation,
        }
        handler = handlers.get(str(kind))
        if not host or handler is None:
            return []
        try:
            with transaction.atomic():  # a savepoint: a record that fails is undone alone
                return handler(host, event, ref)
        except (KeyError, TypeError, ValueError, ArithmeticError, DatabaseError) as exc:
            log.error("monitor: %s is not a well-formed %s record (%s); skipped", ref, kind, exc)
        return []

    def _metrics(self, host: str, event: dict[str, Any], ref: str) -> list[dict[str, Any]]:
        at = _moment(event["time"])
        point = _floor(at, RAW_STEP)
        MetricPoint.objects.update_or_create(
            host=host, step=RAW_STEP, at=point, defaults={"values": series(event)}
        )
        if point.timestamp() < self.state.rolled_until:
            self._dirty_buckets.add((host, _floor(point, ROLLUP_STEP)))
        reported = [s for s in event.get("services", ()) if isinstance(s, dict)]
        for service in reported:
            name = str(service["name"])[:200]
            previous = ServiceInstance.objects.filter(host=host, service=name).first()
            healthy = service["healthy"] is True
            changed = at if previous is None or previous.healthy != healthy else None
            checks = service.get("checks")
            ServiceInstance.objects.update_or_create(
                host=host,
                service=name,
                defaults={
                    "zone": str(service.get("zone", ""))[:32],
                    "healthy": healthy,
                    "checks": checks if isinstance(checks, dict) else {},
                    "reported_at": at,
                    **({"changed_at": changed} if changed else {}),
                },
            )
        # A service gone from the host's health file is no longer one of its instances.
        names = [str(s["name"])[:200] for s in reported]
        ServiceInstance.objects.filter(host=host).exclude(service__in=names).delete()
        return []

    def _alert(self, host: str, event: dict[str, Any], ref: str) -> list[dict[str, Any]]:
        if event["state"] not in {"firing", "resolved"}:
            raise ValueError(f"state {event['state']!r}")
        started = _moment(event["since"])
        instance = str(event.get("instance", ""))[:500]
        record, _ = AlertRecord.objects.update_or_create(
            host=host,
            rule=str(event["rule"])[:200],
            instance=instance,
            started_at=started,
            defaults={
                "severity": float(event["severity"]),
                "condition": str(event.get("condition", ""))[:300],
                "description": str(event.get("description", "")),
                "value": event.get("value"),
                **({"ended_at": _moment(event["time"])} if event["state"] == "resolved" else {}),
            },
        )
        if event["state"] != "firing":
            return []
        where = f" ({instance})" if instance else ""
        return [
            _finding(
                ("alert", host, record.rule, instance, _iso(started)),
                type_=f"Health:Host/{record.rule}",
                severity=record.severity,
                title=f"{record.rule} on {host}{where}",
                description=f"{record.description} {record.condition} (value {record.value}).",
                remediation="Open the host's page in the console for its charts, checks and "
                "remediation history; the alert resolves when the condition no longer holds.",
                host=host,
                first_seen=_iso(started),
                last_seen=str(event["time"]),
                evidence=[ref],
                group={"rule": record.rule, "instance": instance},
            )
        ]

    def _remediation(self, host: str, event: dict[str, Any], ref: str) -> list[dict[str, Any]]:
        outcome = str(event["outcome"])
        RemediationRecord.objects.update_or_create(
            ref=ref,
            defaults={
                "host": host,
                "subject": str(event.get("subject", ""))[:500],
                "action": str(event.get("action", ""))[:50],
                "plan": str(event.get("plan", "")),
                "outcome": outcome[:20],
                "detail": str(event.get("detail", "")),
                "attempt": _count(event.get("attempt")),
                "dry_run": bool(event.get("dry_run")),
                "at": _moment(event["time"]),
            },
        )
        if outcome != "breaker_open":
            return []
        subject, name = str(event["subject"]), str(event.get("name", ""))
        return [
            _finding(
                ("breaker", host, subject, str(event["time"])),
                type_="Remediation:Host/CircuitBreakerOpen",
                severity=7.0,
                title=f"Automatic remediation stopped on {host}: {subject}",
                description=f"{event.get('plan', 'The runbook')} ran {event.get('budget')} times "
                f"within {float(event.get('window_s') or 0):.0f} s without fixing {subject}; "
                "the agent does nothing more about it until someone re-arms it.",
                remediation=f"Find why the runbook does not fix it (the host's remediation "
                f"history, its logs), then run `garrison agent rearm {name}` on {host}.",
                host=host,
                first_seen=str(event["time"]),
                last_seen=str(event["time"]),
                evidence=[ref],
                group={"subject": subject},
            )
        ]

    # -- maintenance ---------------------------------------------------------------------

    def maintain(self, now: dt.datetime, *, judge: bool = True) -> list[dict[str, Any]]:
        """Roll up, expire, and (when `judge`) judge zones and silent agents; the findings."""
        with transaction.atomic():
            self._roll_up(now)
            MetricPoint.objects.filter(step=RAW_STEP, at__lt=now - RAW_KEEP).delete()
            MetricPoint.objects.filter(step=ROLLUP_STEP, at__lt=now - ROLLUP_KEEP).delete()
            revoked = Host.objects.filter(revoked_at__isnull=False).values_list("name", flat=True)
            ServiceInstance.objects.filter(host__in=list(revoked)).delete()
        return self._zones(now) + self._silent(now) if judge else []

    def _roll_up(self, now: dt.datetime) -> None:
        until = _floor(now, ROLLUP_STEP)
        buckets = set(self._dirty_buckets)
        self._dirty_buckets.clear()
        start = _moment(self.state.rolled_until) if self.state.rolled_until else None
        raw = MetricPoint.objects.filter(step=RAW_STEP, at__lt=until)
        if start is not None:
            raw = raw.filter(at__gte=start)
        for host, at in raw.values_list("host", "at"):
            buckets.add((host, _floor(at, ROLLUP_STEP)))
        for host, bucket in buckets:
            points = MetricPoint.objects.filter(
                host=host, step=RAW_STEP, at__gte=bucket,
                at__lt=bucket + dt.timedelta(seconds=ROLLUP_STEP),
            ).values_list("values", flat=True)  # fmt: skip
            collected: dict[str, list[float]] = defaultdict(list)
            for values in points:
                for key, value in values.items():
                    collected[key].append(float(value))
            if not collected:
                continue
            rolled = {k: round(sum(v) / len(v), 3) for k, v in collected.items()}
            rolled |= {f"{k}_max": max(v) for k, v in collected.items()}
            MetricPoint.objects.update_or_create(
                host=host, step=ROLLUP_STEP, at=bucket, defaults={"values": rolled}
            )
        self.state.rolled_until = until.timestamp()

    def _zones(self, now: dt.datetime) -> list[dict[str, Any]]:
        findings = []
        fresh_after = now - self.silent_after
        by_service: dict[str, list[ServiceInstance]] = defaultdict(list)
        for instance in ServiceInstance.objects.all():
            by_service[instance.service].append(instance)
        for service, instances in sorted(by_service.items()):
            zones = sorted({i.zone for i in instances})
            healthy = sorted(
                {i.zone for i in instances if i.healthy and i.reported_at >= fresh_after}
            )
            if len(healthy) >= 2:
                self.state.single_zone.pop(service, None)
                continue
            since = self.state.single_zone.setdefault(service, _iso(now))
            where = f"only in {healthy[0]}" if healthy else "in no zone"
            findings.append(
                _finding(
                    ("zones", service, since),
                    type_="Availability:Service/SingleZone",
                    severity=8.0 if not healthy else 7.0,
                    title=f"{service} runs healthy {where}",
                    description=f"{service} has instances in {', '.join(zones)}; healthy now "
                    f"{where}. One failure domain going down takes the service with it "
                    "(claim P1: every production service runs in two zones or more).",
                    remediation=f"Bring {service}'s instances back, or add one in a second zone "
                    "(declare it in that host's health file with its zone).",
                    host="",
                    first_seen=since,
                    last_seen=_iso(now),
                    evidence=[f"service:{service}"],
                    group={"service": service, "zones": zones, "healthy_zones": healthy},
                )
            )
        return findings

    def _silent(self, now: dt.datetime) -> list[dict[str, Any]]:
        seen = queries.activity_snapshot()
        last_points = dict(
            MetricPoint.objects.filter(step=RAW_STEP)
            .values_list("host")
            .annotate(last=Max("at"))
            .values_list("host", "last")
        )
        findings = []
        joined = Host.objects.filter(joined_at__isnull=False, revoked_at__isnull=True)
        for host in joined.exclude(name=DEMO_HOST):  # the demo's made-up host runs no agent
            view = queries.view_of(host, seen)
            heard = [m for m in (view.last_seen, last_points.get(host.name), host.joined_at) if m]
            last = max(heard)
            if now - last < self.silent_after:
                self.state.silent.pop(host.name, None)
                continue
            since = self.state.silent.setdefault(host.name, _iso(last))
            minutes = (now - last).total_seconds() / 60
            findings.append(
                _finding(
                    ("silent", host.name, since),
                    type_="Health:Host/AgentSilent",
                    severity=7.0,
                    title=f"The agent of {host.name} has been silent for {minutes:.0f} minutes",
                    description=f"Nothing from {host.name} (no logs, metrics or heartbeat) "
                    f"since {_iso(last)}: the host, its agent or the network to it is down, "
                    "and nothing on it is watched or remedied meanwhile.",
                    remediation=f"Reach {host.name}; check `systemctl status garrison-agent` "
                    "and the agent's log; its spool ships what it kept once it reconnects.",
                    host=host.name,
                    first_seen=since,
                    last_seen=_iso(now),
                    evidence=[f"host:{host.name}"],
                    group={"last_heard": _iso(last)},
                )
            )
        return findings

    def run(self, stop: threading.Event, idle: float = 1.0) -> None:
        """Follow until `stop` is set."""
        while not stop.is_set():
            try:
                if not self.step():
                    stop.wait(idle)
            except Exception:
                log.exception("monitor: round failed; retrying")
                stop.wait(5)
