"""Loading Sigma rules (the built-in catalog and the user's folders) into runnable rules.

pySigma parses every ``*.yml`` file (rules and correlation rules, several per file with
``---``) and resolves correlation references by rule name or id across all loaded files.
A rule that pySigma refuses, whose logsource Garrison does not serve, or that uses a construct
the evaluator lacks, is reported as a `RuleProblem` (file and reason) and skipped.

Garrison reads an optional ``garrison:`` block per rule:

```yaml
garrison:
  type: UnauthorizedAccess:EC2/SSHBruteForce   # GuardDuty's ThreatPurpose:ResourceType/Family
  severity: 5.0                                  # GuardDuty scale 1-10; default from `level`
  remediation: Block the source ...
  travel: {by: user}                             # see garrison.detect.travel
  tests: [...]                                   # see garrison.detect.ruletest
```
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionOR
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaLevel, SigmaRule
from sigma.types import SigmaString

from garrison.detect.compile import Predicate, RuleCompileError, compile_condition
from garrison.detect.fields import getters, sources_for
from garrison.detect.travel import Travel

CATALOG = "catalog"
#: GuardDuty's scale: low 1-3.9, medium 4-6.9, high 7-8.9, critical 9-10.
LEVEL_SEVERITY = {
    SigmaLevel.INFORMATIONAL: 1.0,
    SigmaLevel.LOW: 2.0,
    SigmaLevel.MEDIUM: 5.0,
    SigmaLevel.HIGH: 8.0,
    SigmaLevel.CRITICAL: 9.0,
}
SUPPORTED_CORRELATIONS = {
    SigmaCorrelationType.EVENT_COUNT,
    SigmaCorrelationType.VALUE_COUNT,
    SigmaCorrelationType.VALUE_SUM,
    SigmaCorrelationType.TEMPORAL,
    SigmaCorrelationType.TEMPORAL_ORDERED,
}


def severity_label(severity: float) -> str:
    """GuardDuty's name for a severity."""
    if severity >= 9:  # the scale's bounds
        return "critical"
    if severity >= 7:
        return "high"
    if severity >= 4:
        return "medium"
    return "low"


@dataclass(frozen=True)
class RuleProblem:
    """A rule file or rule that was skipped, and why."""

    path: str
    title: str
    reason: str

    def __str__(self) -> str:
        title = f" ({self.title})" if self.title else ""
        return f"{self.path}{title}: {self.reason}"


@dataclass(eq=False)
class Rule:
    """What every runnable rule has: identity, words for people, where it came from."""

    id: str
    name: str
    title: str
    description: str
    severity: float
    finding_type: str
    remediation: str
    path: str
    generate: bool
    tests: list[dict[str, Any]]
    parents: list[Correlation] = field(default_factory=list)
    travel: Travel | None = None  # matches are logins judged for impossible travel

    @property
    def key(self) -> str:
        """How findings name the rule: its name, else its id."""
        return self.name or self.id


@dataclass(eq=False)
class Detection(Rule):
    """A single-event rule."""

    sources: frozenset[str] = frozenset()
    predicate: Predicate = field(default=lambda event: False)
    classes: frozenset[str] | None = None  # the event classes it can match (None: any)
    outcomes: frozenset[str] | None = None  # the outcomes it can match (None: any)

    def may_match(self, cls: Any, outcome: Any) -> bool:
        """Whether an event of this class and outcome can match (the engine's index)."""
        return _allows(self.classes, cls) and _allows(self.outcomes, outcome)


def _allows(required: frozenset[str] | None, value: Any) -> bool:
    if required is None or (value is not None and not isinstance(value, str)):
        return True  # no requirement, or a value the index does not judge (a list, a number)
    return value is not None and value.lower() in required


@dataclass(eq=False)
class Correlation(Rule):
    """A correlation over other rules' matches, per group, within a timespan (event time)."""

    kind: SigmaCorrelationType = SigmaCorrelationType.EVENT_COUNT
    rules: list[Rule] = field(default_factory=list)
    group_by: list[str] = field(default_factory=list)
    timespan: float = 0.0
    operator: SigmaCorrelationConditionOperator = SigmaCorrelationConditionOperator.GTE
    threshold: float = 1
    value_field: str | None = None


@dataclass
class RuleSet:
    """The loaded rules and the problems met while loading."""

    detections: list[Detection]
    correlations: list[Correlation]
    problems: list[RuleProblem]

    @property
    def rules(self) -> list[Rule]:
        """Every runnable rule."""
        return [*self.detections, *self.correlations]


def _meta(rule: SigmaRule | SigmaCorrelationRule, path: str) -> dict[str, Any]:
    custom = (rule.custom_attributes or {}).get("garrison") or {}
    if not isinstance(custom, dict):
        raise RuleCompileError("the garrison: block must be a mapping")
    level = rule.level or SigmaLevel.MEDIUM
    severity = float(custom.get("severity", LEVEL_SEVERITY.get(level, 5.0)))
    if not 1 <= severity <= 10:  # GuardDuty's scale
        raise RuleCompileError(f"severity {severity} is outside 1-10")
    name = rule.name or ""
    rule_id = str(rule.id) if rule.id else name
    if not rule_id:
        raise RuleCompileError("the rule has neither an id nor a name")
    tests = custom.get("tests") or []
    if not isinstance(tests, list):
        raise RuleCompileError("garrison.tests must be a list")
    return {
        "id": rule_id,
        "name": name,
        "title": rule.title or name or rule_id,
        "description": (rule.description or "").strip(),
        "severity": severity,
        "finding_type": str(custom.get("type") or f"Sigma:Rule/{name or rule_id}"),
        "remediation": str(custom.get("remediation") or "").strip(),
        "path": path,
        "tests": tests,
        "travel": Travel.from_block(custom["travel"]) if "travel" in custom else None,
    }


def _detection(rule: SigmaRule, path: str) -> Detection:
    sources = sources_for(rule.logsource)
    if not sources:
        raise RuleCompileError(f"Garrison reads no events of logsource {rule.logsource}")
    parsed = rule.detection.parsed_condition
    if len(parsed) != 1:
        raise RuleCompileError("exactly one condition is supported")
    tree = parsed[0].parsed
    predicate = compile_condition(tree, getters(sources))
    return Detection(
        **_meta(rule, path),
        generate=True,
        sources=sources,
        predicate=predicate,
        classes=required_values(tree, "class"),
        outcomes=required_values(tree, "outcome"),
    )


def required_values(node: Any, name: str) -> frozenset[str] | None:
    """The values (lower-case) field `name` must have for `node` to match, when the condition
    says so at its top (``name: X`` in every alternative); None when any value may match.

    The engine indexes rules by the ``class`` and ``outcome`` they require, to skip rules whole:
    most events fail those tests of most rules."""
    if isinstance(node, ConditionAND):
        found = [c for c in (required_values(a, name) for a in node.args) if c is not None]
        return frozenset.intersection(*found) if found else None
    if isinstance(node, ConditionOR):
        options = [required_values(a, name) for a in node.args]
        if any(o is None for o in options):
            return None
        return frozenset().union(*options)  # type: ignore[arg-type]  # no None left
    if (
        isinstance(node, ConditionFieldEqualsValueExpression)
        and node.field == name
        and isinstance(node.value, SigmaString)
        and not node.value.contains_special()
    ):
        return frozenset({str(node.value).lower()})
    return None


def _correlation(rule: SigmaCorrelationRule, path: str) -> Correlation:
    if rule.type not in SUPPORTED_CORRELATIONS:
        raise RuleCompileError(f"correlation type {rule.type.name.lower()} is not supported")
    if rule.timespan is None or rule.timespan.seconds <= 0:
        raise RuleCompileError("a correlation needs a timespan")
    if rule.aliases:
        raise RuleCompileError("correlation aliases are not supported; name the fields alike")
    condition = rule.condition
    if condition is not None and not isinstance(condition, SigmaCorrelationCondition):
        raise RuleCompileError("combined correlation conditions are not supported")
    value_field = condition.fieldref if condition is not None else None
    meta = _meta(rule, path)
    if meta["travel"] is not None:
        raise RuleCompileError("garrison.travel is for single-event rules (the logins)")
    needs_field = rule.type in {SigmaCorrelationType.VALUE_COUNT, SigmaCorrelationType.VALUE_SUM}
    if needs_field and not value_field:
        raise RuleCompileError(f"a {rule.type.name.lower()} condition needs a field")
    return Correlation(
        **meta,
        generate=True,
        kind=rule.type,
        group_by=list(rule.group_by or []),
        timespan=float(rule.timespan.seconds),
        operator=condition.op if condition else SigmaCorrelationConditionOperator.GTE,
        threshold=condition.count if condition and condition.count is not None else 1,
        value_field=value_field if isinstance(value_field, str) else None,
    )


def _files(folders: Iterable[Path]) -> list[tuple[str, str]]:
    found = []
    catalog = resources.files("garrison.detect").joinpath(CATALOG)
    for item in sorted(catalog.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yml"):
            found.append((f"catalog/{item.name}", item.read_text()))
    for folder in folders:
        for file in sorted(Path(folder).rglob("*.yml")):
            found.append((str(file), file.read_text()))
    return found


def load(folders: Iterable[Path] = (), *, catalog: bool = True) -> RuleSet:
    """The catalog (unless `catalog` is False) and every ``*.yml`` under `folders`."""
    problems: list[RuleProblem] = []
    parsed: list[tuple[str, SigmaRule | SigmaCorrelationRule]] = []
    files = _files(folders)
    if not catalog:
        files = [(p, t) for p, t in files if not p.startswith("catalog/")]
    for path, text in files:
        try:
            collection = SigmaCollection.from_yaml(text, collect_errors=True)
        except (SigmaError, yaml.YAMLError) as exc:
            problems.append(RuleProblem(path, "", " ".join(str(exc).split())))
            continue
        for rule in collection.rules:
            if rule.errors:
                problems.append(RuleProblem(path, rule.title or "", str(rule.errors[0])))
                continue
            parsed.append((path, rule))
    return _build(parsed, problems)


def _compile_all(
    parsed: list[tuple[str, SigmaRule | SigmaCorrelationRule]], problems: list[RuleProblem]
) -> tuple[list[Detection], list[tuple[Correlation, SigmaCorrelationRule]], dict[str, Rule]]:
    """Each rule compiled on its own; correlations still to be linked to what they name."""
    detections: list[Detection] = []
    pending: list[tuple[Correlation, SigmaCorrelationRule]] = []
    by_ref: dict[str, Rule] = {}
    for path, rule in parsed:
        built: Rule
        try:
            if isinstance(rule, SigmaCorrelationRule):
                corr = _correlation(rule, path)
                pending.append((corr, rule))
                built = corr
            else:
                det = _detection(rule, path)
                detections.append(det)
                built = det
        except (RuleCompileError, SigmaError, ValueError, TypeError) as exc:
            problems.append(RuleProblem(path, rule.title or "", str(exc)))
            continue
        taken = [ref for ref in {built.id, built.name} - {""} if ref in by_ref]
        if taken:
            other = by_ref[taken[0]].path
            problems.append(
                RuleProblem(path, built.title, f"{taken[0]} is already used by {other}")
            )
            if isinstance(built, Correlation):
                pending.pop()
            else:
                detections.pop()
            continue
        for ref in {built.id, built.name} - {""}:
            by_ref[ref] = built
    return detections, pending, by_ref


def _build(
    parsed: list[tuple[str, SigmaRule | SigmaCorrelationRule]],
    problems: list[RuleProblem],
) -> RuleSet:
    detections, pending, by_ref = _compile_all(parsed, problems)
    correlations: list[Correlation] = []
    for corr, rule in pending:
        refs = [r.reference for r in rule.rules or []]
        missing = [r for r in refs if r not in by_ref]
        if missing or not refs:
            reason = f"unknown rules {missing}" if missing else "names no rules"
            problems.append(RuleProblem(corr.path, corr.title, reason))
            continue
        corr.rules = [by_ref[r] for r in refs]
        correlations.append(corr)
    cyclic = [c for c in correlations if _cyclic(c, set())]
    for corr in cyclic:
        problems.append(
            RuleProblem(corr.path, corr.title, "correlations refer to each other in a cycle")
        )
    correlations = [c for c in correlations if c not in cyclic]
    for corr in correlations:
        for base in corr.rules:
            base.parents.append(corr)
            # Sigma: a rule referenced by a correlation does not alert by itself. A correlation
            # referenced by another (brute force, then success) still does.
            base.generate = isinstance(base, Correlation)
    for corr, rule in pending:
        if rule.generate:
            for base in corr.rules:
                base.generate = True
    return RuleSet(detections, correlations, problems)


def _cyclic(corr: Correlation, seen: set[int]) -> bool:
    if id(corr) in seen:
        return True
    seen = seen | {id(corr)}
    return any(isinstance(r, Correlation) and _cyclic(r, seen) for r in corr.rules)
