"""The detection engine: rules over a stream of events, in event time, with bounded state.

Feed events in order with `Engine.process` (each with a reference to where it is stored);
matches of single-event rules and fired correlations become `Finding` s, their source address
placed by country and network (`garrison.detect.geo`) when the finding opens. A finding groups
repeated activity: the same rule and the same actor (its group-by values, or source address,
user and host) update the open finding (count, last seen, evidence) instead of opening another,
until it has been quiet for `REOPEN_AFTER` of event time.

Windows use the events' own timestamps, so replaying a file gives the findings a live run
gives. State is bounded: a correlation's per-group state is dropped once its window has
passed, and at most `max_groups` groups are kept per correlation (at the cap, the group quiet
the longest is dropped, counted in `Engine.stats` as ``groups_evicted``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import itertools
import math
import operator
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sigma.correlations import SigmaCorrelationConditionOperator as Op
from sigma.correlations import SigmaCorrelationType as Kind

from garrison.core.errors import GarrisonError
from garrison.detect import geo
from garrison.detect.fields import SRC, FieldResolver, is_plain, source_of, src
from garrison.detect.intel import IPLists
from garrison.detect.rules import Correlation, Detection, Rule, RuleSet, severity_label
from garrison.detect.travel import TravelState
from garrison.events.schema import Event

SNAPSHOT_VERSION = 2
_encode = msgspec.json.Encoder().encode
REOPEN_AFTER = 3600.0
EVIDENCE_MAX = 20
MAX_GROUPS = 100_000
_SWEEP_EVERY = 10_000
_TIME_CACHE_MAX = 65536
_DISPATCH_MAX = 4096
ACTOR_FIELDS = ("src_ip", "src_host", "source_ip", "user", "host")

_OPS: dict[Op, Callable[[float, float], bool]] = {
    Op.LT: operator.lt,
    Op.LTE: operator.le,
    Op.GT: operator.gt,
    Op.GTE: operator.ge,
    Op.EQ: operator.eq,
    Op.NEQ: operator.ne,
}


def _iso(seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


@dataclass
class Finding:
    """Activity one rule found for one actor: what, who, when, how often, and the evidence."""

    rule: Rule
    group: dict[str, Any]
    first_seen: float
    last_seen: float
    count: int = 0
    evidence: list[Any] = field(default_factory=list)
    actor: dict[str, Any] = field(default_factory=dict)
    key: tuple[Any, ...] = ()
    opened: float = 0.0  # the time of the event that opened it: with `key`, what names it

    @property
    def id(self) -> str:
        """A stable id: the rule, the group (or actor) and the event that opened it, all fixed
        when the finding opens (the same events in the same order give the same id)."""
        text = _encode([self.rule.id, list(self.key), self.opened])
        return "fnd_" + hashlib.sha256(text).hexdigest()[:32]

    def add(self, when: float, ref: Any, event: Event, count: int = 1) -> None:
        """One more matching event (or `count` of them, when a correlation fires)."""
        self.count += count
        if when < self.first_seen:
            self.first_seen = when
        elif when > self.last_seen:
            self.last_seen = when
        if len(self.evidence) < EVIDENCE_MAX:
            if ref is not None:
                self.evidence.append(ref)
            for name in ACTOR_FIELDS:  # from the first events that name them
                if name not in self.actor and event.get(name) is not None:
                    self.actor[name] = event[name]

    def as_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready data (what `garrison detect replay` prints)."""
        rule = self.rule
        return {
            "type": rule.finding_type,
            "severity": rule.severity,
            "severity_label": severity_label(rule.severity),
            "title": rule.title,
            "description": rule.description,
            "remediation": rule.remediation,
            "rule": rule.key,
            **self.actor,
            "group": self.group,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "count": self.count,
            "evidence": self.evidence,
        }


@dataclass(slots=True)
class _Hit:
    """A rule match handed to the correlations above it."""

    rule: Rule
    event: Event
    when: float
    ref: Any
    count: int = 1
    group: tuple[Any, ...] = ()
    window: Iterable[tuple[float, Any, Any]] = ()  # a firing count's events: the first evidence


class _Window:
    """One correlation's state for one group."""

    __slots__ = ("chain", "last", "sum", "times", "values")

    def __init__(self) -> None:
        self.times: deque[tuple[float, Any, Any]] = deque()
        self.values: dict[Any, float] = {}
        self.sum = 0.0
        self.chain: dict[int, float] = {}  # temporal(_ordered): rule index -> chain start time
        self.last = 0.0


class _CorrelationState:
    def __init__(self, corr: Correlation, resolve: FieldResolver, max_groups: int) -> None:
        self.corr = corr
        self.resolve = resolve
        self.max_groups = max_groups
        self.groups: dict[tuple[Any, ...], _Window] = {}
        self.evicted = 0
        self.index = {id(r): i for i, r in enumerate(corr.rules)}
        kind = corr.kind
        self.temporal = kind in {Kind.TEMPORAL, Kind.TEMPORAL_ORDERED}
        self.ordered = kind is Kind.TEMPORAL_ORDERED
        self.measure_count = kind is Kind.EVENT_COUNT
        self.summing = kind is Kind.VALUE_SUM
        self.value_field = corr.value_field if kind in {Kind.VALUE_COUNT, Kind.VALUE_SUM} else None
        self.span = corr.timespan
        self.threshold = corr.threshold
        self.compare = _OPS[corr.operator]
        names = corr.group_by
        self.single: Callable[[Event], Any] | None = None
        if len(names) == 1 and names[0] == SRC:
            self.single = src
        elif len(names) == 1 and is_plain(names[0]):
            self.single = _getter(names[0])

    def group_of(self, event: Event) -> tuple[Any, ...] | None:
        """The event's group key (None: it lacks a group-by field)."""
        if self.single is not None:  # one plain field, or the usual src: read it directly
            value = self.single(event)
            if type(value) is str or type(value) is int:
                return (value,)
        values = []
        for name in self.corr.group_by:
            found = self.resolve(event, name)
            if not found or found[0] is None:
                return None  # an event without the group's field is in no group
            values.append(freeze(found[0]))
        return tuple(values)

    def feed(self, hit: _Hit, key: tuple[Any, ...]) -> _Hit | None:
        """Account `hit` in the window of group `key`; a `_Hit` of this correlation when its
        condition now holds."""
        window = self.groups.get(key)
        if window is None:
            if len(self.groups) >= self.max_groups:
                self._evict(hit.when)
            window = self.groups[key] = _Window()
        when = hit.when
        window.last = max(window.last, when)
        if self.temporal:
            return self._temporal(window, hit, key)
        value: Any = None
        if self.value_field is not None:
            found = self.resolve(hit.event, self.value_field)
            if not found or found[0] is None:
                return None
            value = freeze(found[0])
            if self.summing and not math.isfinite(_number(value)):
                return None  # NaN or infinity would spoil the sum for good
        times = self._insert(window, when, value, hit.ref)
        if self.measure_count:
            measure: float = len(times)
        elif self.summing:
            measure = window.sum
        else:
            measure = len(window.values)
        if self.compare(measure, self.threshold):
            return _Hit(self.corr, hit.event, when, hit.ref, len(times), key, times)
        return None

    def _insert(
        self, window: _Window, when: float, value: Any, ref: Any
    ) -> deque[tuple[float, Any, Any]]:
        """Put one event into the window in time order, then drop what the window has passed."""
        times = window.times
        if not times or when >= times[-1][0]:
            times.append((when, value, ref))
        else:  # events of several streams or hosts arrive a little out of order
            times.insert(bisect.bisect_right([t[0] for t in times], when), (when, value, ref))
        self._add(window, value, when, 1)
        newest = times[-1][0]
        while times and newest - times[0][0] > self.span:
            old_when, old, _ = times.popleft()
            self._add(window, old, old_when, -1)
        return times

    def _add(self, window: _Window, value: Any, when: float, sign: int) -> None:
        """Count `value` into (sign 1) or out of (sign -1) the window's sum or distinct set."""
        if self.summing:
            window.sum += sign * _number(value)
        elif self.value_field is not None:
            if sign > 0:
                window.values[value] = max(when, window.values.get(value, when))
            elif window.values.get(value) == when:
                del window.values[value]

    def _temporal(self, window: _Window, hit: _Hit, key: tuple[Any, ...]) -> _Hit | None:
        corr, when = self.corr, hit.when
        index = self.index[id(hit.rule)]
        chain = window.chain
        if not self.ordered:
            chain[index] = when
            if len(chain) == len(corr.rules) and when - min(chain.values()) <= corr.timespan:
                return _Hit(corr, hit.event, when, hit.ref, len(chain), key)
            return None
        if index == 0:
            chain[0] = when
        elif index - 1 in chain and when - chain[index - 1] <= corr.timespan:
            chain[index] = chain[index - 1]
        else:
            return None
        if index == len(corr.rules) - 1:
            return _Hit(corr, hit.event, when, hit.ref, len(corr.rules), key)
        return None

    def _evict(self, now: float) -> None:
        """At the cap: drop passed windows, then the quietest tenth of the groups (so that a
        spray of new sources costs one sort per tenth of the cap, not one per event)."""
        self.sweep(now)
        if len(self.groups) >= self.max_groups:
            quiet = sorted(self.groups, key=lambda k: self.groups[k].last)
            for key in quiet[: max(1, self.max_groups // 10)]:
                del self.groups[key]
                self.evicted += 1

    def sweep(self, watermark: float) -> None:
        """Drop groups whose window has passed."""
        span = self.corr.timespan
        for key in [k for k, w in self.groups.items() if watermark - w.last > span]:
            del self.groups[key]


def _getter(name: str) -> Callable[[Event], Any]:
    return lambda event: event.get(name)


def freeze(value: Any) -> Any:
    """A field value usable as a group key or a distinct value (lists and dicts become tuples)."""
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    return value


def _thaw(value: Any) -> Any:
    """A value back from JSON: lists were tuples (hashable group keys and values)."""
    return tuple(_thaw(v) for v in value) if isinstance(value, list) else value


def _key(values: list[Any]) -> tuple[Any, ...]:
    return tuple(_thaw(v) for v in values)


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


class Engine:
    """Runs a `RuleSet` over events fed in order."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        max_groups: int = MAX_GROUPS,
        lists: IPLists | None = None,
        geo: bool = True,
        keep_closed: bool = True,
    ) -> None:
        self.rules = rules
        self.geo = geo
        self.keep_closed = keep_closed  # replay lists every finding; live ones were handed on
        self.lists = lists
        self.allowlisted = 0
        self.resolve = FieldResolver()
        self.by_source: dict[str, list[Detection]] = {}
        for det in rules.detections:
            for source in det.sources:
                self.by_source.setdefault(source, []).append(det)
        self.states = {
            id(c): _CorrelationState(c, self.resolve, max_groups) for c in rules.correlations
        }
        self.travel = TravelState(max_groups)
        self._horizons = {r.id: r.travel.horizon for r in rules.rules if r.travel is not None}
        self.findings: dict[tuple[str, tuple[Any, ...]], Finding] = {}
        self._dispatch: dict[tuple[str, Any, Any], list[Detection]] = {}
        self.closed: list[Finding] = []
        self.changed: list[Finding] = []
        self.watermark = 0.0
        self.events = 0
        self._times: dict[str, float | None] = {}

    def _when(self, text: object) -> float | None:
        if not isinstance(text, str):
            return None
        try:
            return self._times[text]
        except KeyError:
            pass
        if len(self._times) >= _TIME_CACHE_MAX:
            self._times.clear()
        try:
            value: float | None = dt.datetime.fromisoformat(text).timestamp()
        except ValueError:
            value = None
        self._times[text] = value
        return value

    def process(self, event: Event, ref: Any = None) -> None:
        """Evaluate one event (`ref` says where it is stored: it becomes evidence)."""
        key = (source_of(event), event.get("class"), event.get("outcome"))
        try:
            detections = self._dispatch[key]
        except (KeyError, TypeError):
            detections = self._detections_for(*key)
        self.events += 1
        if self.events % _SWEEP_EVERY == 0:
            for state in self.states.values():
                state.sweep(self.watermark)
            self.travel.sweep(self.watermark, self._horizons)
            self._expire_findings()
            if self.lists is not None:
                self.lists.reload_if_changed()
        if self.lists is not None and not self._listed(event, self.lists):
            return  # the allowlist never produces findings
        if not detections:
            return
        when: float | None = None
        for det in detections:
            if not det.predicate(event):
                continue
            if when is None:
                when = self._when(event.get("time"))
                if when is None:
                    return  # normalized events always have a time; a foreign one is skipped
                self.watermark = max(self.watermark, when)
            self._matched(_Hit(det, event, when, ref))

    def _listed(self, event: Event, lists: IPLists) -> bool:
        """Tag `event` with the lists its source is on; False when it is allowlisted."""
        ip = event.get("src_ip")
        if ip is None:
            return True
        if lists.allowed(ip):
            self.allowlisted += 1
            return False
        if names := lists.lists_of(ip):
            event["threat_lists"] = list(names)
        return True

    def _detections_for(self, source: str, cls: Any, outcome: Any) -> list[Detection]:
        """The rules an event of `source`, `cls` and `outcome` can match (remembered per
        combination of plain values)."""
        found = [d for d in self.by_source.get(source, []) if d.may_match(cls, outcome)]
        plain = isinstance(cls, str | None) and isinstance(outcome, str | None)
        if plain and len(self._dispatch) < _DISPATCH_MAX:  # foreign events: any strings
            self._dispatch[(source, cls, outcome)] = found
        return found

    def _expire_findings(self) -> None:
        """Findings quiet for `REOPEN_AFTER` are done: kept for `all_findings` (replay) only."""
        done = [k for k, f in self.findings.items() if self.watermark - f.last_seen > REOPEN_AFTER]
        for index in done:
            finding = self.findings.pop(index)
            if self.keep_closed:
                self.closed.append(finding)

    def _matched(self, hit: _Hit) -> None:
        rule = hit.rule
        if rule.travel is not None:
            self._travelled(hit)
        elif rule.generate:
            self._finding(hit)
        for parent in rule.parents:
            state = self.states[id(parent)]
            key = state.group_of(hit.event)
            if key is None:
                continue
            open_finding = None if state.temporal else self.findings.get((parent.id, key))
            if open_finding is not None and hit.when - open_finding.last_seen <= REOPEN_AFTER:
                # A count already past its threshold: the open finding takes every further
                # event of its group while it lasts; the window needs no upkeep meanwhile.
                fired: _Hit | None = _Hit(parent, hit.event, hit.when, hit.ref, 1, key)
            else:
                fired = state.feed(hit, key)
            if fired is not None:
                self._matched(fired)

    def _travelled(self, hit: _Hit) -> None:
        """A login: a finding when the account was elsewhere too recently to have got here."""
        check, event = hit.rule.travel, hit.event
        if check is None:
            return
        ip, found = src(event), self.resolve(event, check.by)
        if not isinstance(ip, str) or not found or found[0] is None:
            return
        account = found[0]
        jump = self.travel.observe(hit.rule.id, check, str(account), ip, hit.when)
        if jump is not None:
            hit.group = (account,)
            self._finding(hit, {check.by: account, **jump})

    def _finding(self, hit: _Hit, details: dict[str, Any] | None = None) -> None:
        """Open or update the finding of `hit`: a correlation's group, a travel check's
        account (with `details` of the journey), or else the event's actor."""
        rule, event = hit.rule, hit.event
        grouped = isinstance(rule, Correlation) or details is not None
        key = hit.group if grouped else tuple(event.get(n) for n in ACTOR_FIELDS)
        index = (rule.id, key)
        finding = self.findings.get(index)
        if finding is None or hit.when - finding.last_seen > REOPEN_AFTER:
            if finding is not None and self.keep_closed:
                self.closed.append(finding)
            if isinstance(rule, Correlation):
                group = dict(zip(rule.group_by, key, strict=True))
            else:
                group = details or {}
            first = next(iter(hit.window), (hit.when, None, None))[0]  # the window that fired
            finding = Finding(rule, group, first, hit.when, key=key, opened=hit.when)
            finding.evidence = [ref for _, _, ref in itertools.islice(hit.window, EVIDENCE_MAX - 1)]
            if hit.ref in finding.evidence:
                finding.evidence.pop()
            finding.add(hit.when, hit.ref, event, hit.count)
            if self.geo and isinstance(ip := finding.actor.get("src_ip"), str):
                finding.actor.update(geo.locate(ip))
            self.findings[index] = finding
        else:
            # A correlation that still holds counts each further event once.
            finding.add(hit.when, hit.ref, event, 1)
        self.changed.append(finding)

    def drain(self) -> list[Finding]:
        """The findings opened or updated since the last drain (each once)."""
        seen: dict[int, Finding] = {}
        for finding in self.changed:
            seen[id(finding)] = finding
        self.changed = []
        return list(seen.values())

    def all_findings(self) -> list[Finding]:
        """Every finding so far, oldest first (a finding reopened later is a new one)."""
        every = [*self.closed, *self.findings.values()]
        return sorted(every, key=lambda f: (f.first_seen, f.rule.key))

    def snapshot(self) -> bytes:
        """The engine's state (correlation windows, open findings) as JSON, for `restore`."""
        correlations = {
            state.corr.id: {
                "evicted": state.evicted,
                "groups": [
                    [
                        list(key),
                        [
                            list(w.times),
                            list(w.values.items()),
                            w.sum,
                            list(w.chain.items()),
                            w.last,
                        ],
                    ]
                    for key, w in state.groups.items()
                ],
            }
            for state in self.states.values()
        }
        findings = [
            {
                "rule": f.rule.id,
                "key": list(key),
                "group": f.group,
                "first_seen": f.first_seen,
                "last_seen": f.last_seen,
                "count": f.count,
                "evidence": f.evidence,
                "actor": f.actor,
                "opened": f.opened,
            }
            for (_, key), f in self.findings.items()
        ]
        return _encode(
            {
                "version": SNAPSHOT_VERSION,
                "watermark": self.watermark,
                "events": self.events,
                "correlations": correlations,
                "findings": findings,
                "travel": self.travel.snapshot(),
            }
        )

    def restore(self, data: bytes) -> None:
        """Continue from a `snapshot` (state of rules no longer loaded is dropped)."""
        state = msgspec.json.decode(data)
        if state.get("version") != SNAPSHOT_VERSION:
            raise GarrisonError(
                "the detector state has an unknown version; delete it to start over"
            )
        self.watermark, self.events = float(state["watermark"]), int(state["events"])
        by_id = {s.corr.id: s for s in self.states.values()}
        for corr_id, saved in state["correlations"].items():
            target = by_id.get(corr_id)
            if target is None:
                continue
            target.evicted = int(saved["evicted"])
            for key, (times, values, total, chain, last) in saved["groups"]:
                window = _Window()
                window.times.extend((t[0], _thaw(t[1]), t[2]) for t in times)
                window.values = {_thaw(v): t for v, t in values}
                window.sum, window.last = float(total), float(last)
                window.chain = {int(i): float(t) for i, t in chain}
                target.groups[_key(key)] = window
        rules = {r.id: r for r in self.rules.rules}
        self.travel.restore(state.get("travel", []), set(self._horizons))
        for saved_finding in state["findings"]:
            rule = rules.get(saved_finding["rule"])
            if rule is None:
                continue
            key = _key(saved_finding["key"])
            finding = Finding(
                rule,
                saved_finding["group"],
                float(saved_finding["first_seen"]),
                float(saved_finding["last_seen"]),
                int(saved_finding["count"]),
                list(saved_finding["evidence"]),
                dict(saved_finding["actor"]),
                key,
                float(saved_finding["opened"]),
            )
            self.findings[(rule.id, key)] = finding

    @property
    def stats(self) -> dict[str, int]:
        """Counters: events seen, left out by the allowlist, groups tracked and evicted,
        accounts whose last login place is remembered and forgotten at the cap."""
        return {
            "events": self.events,
            "allowlisted": self.allowlisted,
            "groups": sum(len(s.groups) for s in self.states.values()),
            "groups_evicted": sum(s.evicted for s in self.states.values()),
            "travel_accounts": len(self.travel.places),
            "travel_evicted": self.travel.evicted,
        }
