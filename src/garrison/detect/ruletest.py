"""Rule tests written beside the rules, in each rule's ``garrison.tests`` list.

```yaml
tests:
  - name: ten failures in 45 seconds     # what the case shows
    format: sshd                         # any parser format
    repeat: 10                           # the lines, 10 times ...
    step: 5s                             # ... each repetition 5 s later (default 1 s)
    lines:
      - "{syslog_time} web-1 sshd[{k}]: Failed password for root from 203.0.113.5 port 4{k}00 ssh2"
    then: ["..."]                        # lines after the repetitions, as written
    expect: 1                            # findings of this rule (0: none)
```

Placeholders in `lines`: ``{k}`` (the repetition, from 0), ``{syslog_time}`` (``Dec  1
10:00:05``), ``{clf_time}`` (``01/Dec/2026:10:00:05 +0000``), ``{error_time}`` (nginx's
error log, ``2026/12/01 10:00:05``) and ``{iso_time}``; time starts
at `BASE` (2026-12-01T10:00:00Z). Nothing else in a line is touched, so ``${jndi:`` stays.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from garrison.core.durations import duration
from garrison.detect.engine import Engine
from garrison.detect.rules import Rule, RuleSet
from garrison.events.parsers import events_parser

BASE = dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)
_PLACEHOLDER = re.compile(r"\{(k|syslog_time|clf_time|iso_time|error_time)\}")


@dataclass(frozen=True)
class CaseResult:
    """One test case of one rule."""

    rule: Rule
    name: str
    expected: int
    found: int
    error: str = ""

    @property
    def passed(self) -> bool:
        """Found as many findings as expected, without error."""
        return not self.error and self.found == self.expected


def case_lines(case: dict[str, Any]) -> list[str]:
    """The lines a test case feeds, placeholders filled."""
    step = duration(case.get("step", "1s"))
    lines = case.get("lines") or []
    out: list[str] = []
    for k in range(int(case.get("repeat", 1))):
        moment = BASE + dt.timedelta(seconds=k * step)
        values = {
            "k": str(k),
            "syslog_time": moment.strftime("%b %e %H:%M:%S"),
            "clf_time": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "iso_time": moment.isoformat().replace("+00:00", "Z"),
            "error_time": moment.strftime("%Y/%m/%d %H:%M:%S"),
        }
        out += [_fill(str(line), values) for line in lines]
    return out + [str(line) for line in case.get("then") or []]


def _fill(line: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m[1]], line)


def run_case(rules: RuleSet, rule: Rule, case: dict[str, Any]) -> CaseResult:
    """Feed one case through a fresh engine; count the findings of `rule`."""
    name = str(case.get("name") or "unnamed case")
    expected = int(case.get("expect", 1))
    try:
        parse = events_parser(str(case["format"]), reference_time=BASE + dt.timedelta(days=1))
        engine = Engine(rules)
        for number, line in enumerate(case_lines(case), start=1):
            for event in parse(line):
                engine.process(event, number)
    except (KeyError, ValueError, TypeError) as exc:
        return CaseResult(rule, name, expected, 0, f"cannot run the case: {exc}")
    found = sum(1 for f in engine.all_findings() if f.rule is rule)
    return CaseResult(rule, name, expected, found)


def run_tests(rules: RuleSet) -> list[CaseResult]:
    """Every test case of every rule in `rules`."""
    return [run_case(rules, rule, case) for rule in rules.rules for case in rule.tests]
