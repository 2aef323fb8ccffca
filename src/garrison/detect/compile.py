"""Sigma detections compiled to Python predicates over Garrison events.

pySigma parses the rule and resolves its condition into a tree (`sigma.conditions`); this
module turns that tree into nested closures, once per rule. Matching follows the Sigma
specification: strings compare case-insensitively (``|cased`` keeps case), ``*`` and ``?`` are
wildcards, a list of values is an OR, a field holding a list matches when any element does,
numbers compare by value whatever their type in the event, ``|re`` searches (unanchored),
``|cidr`` tests addresses, ``|exists`` tests presence and ``null`` absence. A keyword (a value
without a field) is searched for anywhere in the event's raw line.

Fields are read through getters from `garrison.detect.fields`, which apply the logsource's
field mapping (SigmaHQ's ``cs-uri-query`` is Garrison's ``path`` and ``path_decoded``) and,
for CloudTrail, read the original record. Any construct this evaluator does not implement raises
`RuleCompileError` naming it: the rule is reported and skipped, never half-evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sigma import conditions as cond
from sigma import types as st
from sigma.types import SpecialChars

from garrison.core.errors import GarrisonError
from garrison.detect.fields import PlainField
from garrison.detect.intel import address as ip_address
from garrison.events.schema import Event

MEMO_MAX = 8192  # per test: bounded memory (a few MB per test at worst), still most hits
Predicate = Callable[[Event], bool]
Getter = Callable[[Event], list[Any]]
Fields = Callable[[str], Getter]
"""Gives the getter of a Sigma field name for the rule's logsource."""


class RuleCompileError(GarrisonError):
    """A rule uses something the evaluator cannot run (the rule is skipped and reported)."""

    code = "rule_invalid"


class Memo:
    """A test remembering its answer per string: log fields (user agents, paths, users, classes)
    repeat, so most tests become one dict lookup. Bounded: forgets everything when full."""

    __slots__ = ("cache", "test")

    def __init__(self, test: Callable[[Any], bool]) -> None:
        self.test = test
        self.cache: dict[str, bool] = {}

    def __call__(self, value: Any) -> bool:
        if type(value) is not str:
            return self.test(value)
        found = self.cache.get(value)
        if found is None:
            if len(self.cache) >= MEMO_MAX:
                self.cache.clear()
            found = self.cache[value] = self.test(value)
        return found


def _plain_test(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return test


class FieldTest:
    """``field`` passes a memoized test (or, with none, is present and not null): what ANDs of
    plain fields are fused from."""

    __slots__ = ("alone", "memo", "name")

    def __init__(self, name: str, test: Memo | None) -> None:
        self.name = name
        self.memo = test
        self.alone = _fused([self])

    def __call__(self, event: Event) -> bool:
        return self.alone(event)


def _fused(tests: list[FieldTest]) -> Predicate:
    """All `tests` pass, evaluated in one loop without a call per field (the hot path)."""
    items = [(t.name, t.memo.cache if t.memo else None, t.memo) for t in tests]

    def every(event: Event) -> bool:
        for name, cache, test in items:
            v = event.get(name)
            if v is None:
                return False
            if test is None or cache is None:  # present is enough
                continue
            if type(v) is str:
                found = cache.get(v)
                if found is None:
                    found = test(v)
            elif type(v) is list:
                found = any(item is not None and test(item) for item in v)
            else:
                found = test(v)
            if not found:
                return False
        return True

    return every


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_parts(parts: tuple[Any, ...]) -> None:
    wildcards = {SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE}
    for part in parts:
        if not isinstance(part, str) and part not in wildcards:
            raise RuleCompileError(f"{part!r} in a value is not supported (placeholders, |expand)")


def _string_test(
    parts: tuple[Any, ...], cased: bool, remember: bool = True
) -> Callable[[Any], bool]:
    """A test of one event value against a Sigma string's parts (text, wildcards); `remember`
    memoizes it (not for raw lines, which never repeat)."""
    _check_parts(parts)
    memo: Callable[[Callable[[Any], bool]], Callable[[Any], bool]] = (
        Memo if remember else _plain_test
    )
    plain = [p for p in parts if isinstance(p, str)]
    specials = [p for p in parts if not isinstance(p, str)]
    # str.lower, not casefold: the same case rules as re.IGNORECASE in merged lists
    norm: Callable[[str], str] = (lambda s: s) if cased else str.lower
    if not specials:
        want = norm("".join(plain))
        return memo(lambda v: norm(_text(v)) == want)
    multi = SpecialChars.WILDCARD_MULTI
    if all(p is multi for p in specials) and len(plain) == 1:
        needle = norm(plain[0])
        head, tail = parts[0] is multi, parts[-1] is multi
        if head and tail and len(parts) == 3:  # *needle*
            return memo(lambda v: needle in norm(_text(v)))
        if tail and len(parts) == 2:  # needle*
            return memo(lambda v: norm(_text(v)).startswith(needle))
        if head and len(parts) == 2:  # *needle
            return memo(lambda v: norm(_text(v)).endswith(needle))
    pattern = "".join(
        re.escape(p) if isinstance(p, str) else (".*" if p is multi else ".") for p in parts
    )
    compiled = re.compile(pattern, re.DOTALL if cased else re.DOTALL | re.IGNORECASE)
    return memo(lambda v: compiled.fullmatch(_text(v)) is not None)


def _number_test(value: st.SigmaNumber) -> Callable[[Any], bool]:
    want = value.number

    def test(v: Any) -> bool:
        if isinstance(v, bool):
            return False
        if isinstance(v, int | float):
            return bool(v == want)
        try:
            return float(v) == want
        except (TypeError, ValueError):
            return False

    return test


def _compare_test(value: st.SigmaCompareExpression) -> Callable[[Any], bool]:
    ops = st.SigmaCompareExpression.CompareOperators
    limit = value.number.number
    compare: Callable[[float], bool] = {
        ops.LT: lambda n: n < limit,
        ops.LTE: lambda n: n <= limit,
        ops.GT: lambda n: n > limit,
        ops.GTE: lambda n: n >= limit,
    }[value.op]

    def test(v: Any) -> bool:
        if isinstance(v, bool):
            return False
        try:
            return compare(float(v))
        except (TypeError, ValueError):
            return False

    return test


def _regex_test(value: st.SigmaRegularExpression) -> Callable[[Any], bool]:
    flags = 0
    names = {f.name for f in value.flags}
    flags |= re.IGNORECASE if "IGNORECASE" in names else 0
    flags |= re.MULTILINE if "MULTILINE" in names else 0
    flags |= re.DOTALL if "DOTALL" in names else 0
    pattern = str(value.regexp)  # pySigma keeps it as a SigmaString; str() gives it as written
    try:
        compiled = re.compile(pattern, flags)
    except re.error as exc:
        raise RuleCompileError(f"regular expression {pattern!r}: {exc}") from None
    return Memo(lambda v: compiled.search(_text(v)) is not None)


def _cidr_test(value: st.SigmaCIDRExpression) -> Callable[[Any], bool]:
    network = value.network

    def test(v: Any) -> bool:
        address = ip_address(_text(v))
        return address is not None and address.version == network.version and address in network

    return test


def value_test(value: Any) -> Callable[[Any], bool]:  # noqa: PLR0911  # one per Sigma type
    """A test of one (non-null) event value against one Sigma value."""
    if isinstance(value, st.SigmaCasedString):
        return _string_test(tuple(value.s), cased=True)
    if isinstance(value, st.SigmaString):
        return _string_test(tuple(value.s), cased=False)
    if isinstance(value, st.SigmaBool):
        want = value.boolean
        return lambda v: v is want or _text(v).casefold() == ("true" if want else "false")
    if isinstance(value, st.SigmaNumber):
        return _number_test(value)
    if isinstance(value, st.SigmaCompareExpression):
        return _compare_test(value)
    if isinstance(value, st.SigmaRegularExpression):
        return _regex_test(value)
    if isinstance(value, st.SigmaCIDRExpression):
        return _cidr_test(value)
    raise RuleCompileError(f"Sigma value {type(value).__name__} is not supported")


def _any(getter: Getter, test: Callable[[Any], bool]) -> Predicate:
    """True when one of the field's values (or of a list value's items) passes `test`."""
    if isinstance(getter, PlainField) and isinstance(test, Memo):
        return FieldTest(getter.name, test)
    if isinstance(getter, PlainField):  # the common case, without building a list of values
        name = getter.name

        def plain(event: Event) -> bool:
            v = event.get(name)
            if v is None:
                return False
            if type(v) is list:
                return any(item is not None and test(item) for item in v)
            return test(v)

        return plain

    def match(event: Event) -> bool:
        for v in getter(event):
            if v is None:
                continue
            if isinstance(v, list):
                for item in v:
                    if item is not None and test(item):
                        return True
            elif test(v):
                return True
        return False

    return match


def _field(field: str, value: Any, fields: Fields) -> Predicate:
    getter = fields(field)
    if isinstance(value, st.SigmaNull):
        return lambda event: all(v is None for v in getter(event))
    if isinstance(value, st.SigmaExists):
        present = value.exists
        if present and isinstance(getter, PlainField):
            return FieldTest(getter.name, None)
        return lambda event: any(v is not None for v in getter(event)) is present
    if isinstance(value, st.SigmaExpansion):
        return _any(getter, merged_test(list(value.values)))
    return _any(getter, value_test(value))


def _fragment(parts: tuple[Any, ...]) -> str:
    """A Sigma string as a regex for `re.search`: anchored where it has no wildcard."""
    _check_parts(parts)
    multi = SpecialChars.WILDCARD_MULTI
    body = "".join(
        re.escape(p) if isinstance(p, str) else (".*" if p is multi else ".") for p in parts
    )
    head = "" if parts and parts[0] is multi else r"\A"
    tail = "" if parts and parts[-1] is multi else r"\Z"
    return head + body.removeprefix(".*").removesuffix(".*") + tail


def _mergeable(value: Any) -> bool:
    return isinstance(value, st.SigmaString | st.SigmaNumber) and not isinstance(
        value, st.SigmaCasedString
    )


def merged_test(values: list[Any], *, keyword: bool = False) -> Callable[[Any], bool]:
    """One test for several values of one field (an OR): a number set and one regex.

    Sigma lists are mostly long alternatives on one field (paths, user agents, statuses);
    matching them as one case-insensitive alternation costs one regex search per event instead
    of one comparison per value. `keyword` values are found anywhere in the value.
    """
    if not all(_mergeable(v) for v in values):
        tests = [value_test(v) for v in values]
        return lambda v: any(t(v) for t in tests)
    numbers = frozenset(v.number for v in values if isinstance(v, st.SigmaNumber) and not keyword)
    patterns = [
        _fragment(_keyword_parts(v) if keyword else tuple(v.s))
        if isinstance(v, st.SigmaString)
        else re.escape(str(v.number))
        for v in values
        if isinstance(v, st.SigmaString) or keyword
    ]
    regex = re.compile("|".join(patterns), re.IGNORECASE | re.DOTALL) if patterns else None

    def test(v: Any) -> bool:
        if numbers and not isinstance(v, bool):
            if isinstance(v, int | float):
                if v in numbers:
                    return True
            else:
                try:
                    if float(v) in numbers:
                        return True
                except (TypeError, ValueError):
                    pass
        return regex is not None and regex.search(_text(v)) is not None

    return test if keyword else Memo(test)  # raw lines (keywords) never repeat


def _keyword_parts(value: st.SigmaString) -> tuple[Any, ...]:
    """A keyword is found anywhere in the line: wildcards around it."""
    multi = SpecialChars.WILDCARD_MULTI
    parts = list(value.s)
    if not parts or parts[0] is not multi:
        parts.insert(0, multi)
    if parts[-1] is not multi:
        parts.append(multi)
    return tuple(parts)


def _raw(event: Event) -> list[Any]:
    return [event.get("raw", "")]


def _keywords(values: list[Any]) -> Predicate:
    """Values without a field: searched for anywhere in the raw line."""
    if len(values) == 1 and isinstance(values[0], st.SigmaString):
        value = values[0]
        cased = isinstance(value, st.SigmaCasedString)
        return _any(_raw, _string_test(_keyword_parts(value), cased=cased, remember=False))
    if all(_mergeable(v) for v in values):
        return _any(_raw, merged_test(values, keyword=True))
    parts = [_keywords([v]) for v in values]  # cased or regex keywords: each on its own
    return lambda event: any(p(event) for p in parts)


def _or(args: list[Any], fields: Fields) -> Predicate:
    """An OR, with alternatives on the same field (and keywords) merged into one test."""
    by_field: dict[str, list[Any]] = {}
    keywords: list[Any] = []
    others: list[Predicate] = []
    for arg in args:
        if isinstance(arg, cond.ConditionFieldEqualsValueExpression) and _mergeable(arg.value):
            by_field.setdefault(arg.field, []).append(arg.value)
        elif isinstance(arg, cond.ConditionValueExpression):
            keywords.append(arg.value)
        else:
            others.append(compile_condition(arg, fields))
    parts = [
        _any(fields(name), merged_test(values))
        if len(values) > 1
        else _field(name, values[0], fields)
        for name, values in by_field.items()
    ]
    if keywords:
        parts.append(_keywords(keywords))
    parts += others
    if len(parts) == 1:
        return parts[0]

    def either(event: Event) -> bool:  # a loop, not any(): this runs for every event
        for part in parts:  # noqa: SIM110
            if part(event):
                return True
        return False

    return either


def compile_condition(node: Any, fields: Fields) -> Predicate:
    """The predicate of a parsed Sigma condition tree."""
    if isinstance(node, cond.ConditionAND):
        parts = [compile_condition(a, fields) for a in node.args]
        plain = [p for p in parts if isinstance(p, FieldTest)]
        if len(plain) > 1:  # fuse the plain field tests into one, first (they are cheap)
            parts = [_fused(plain), *[p for p in parts if not isinstance(p, FieldTest)]]
        if len(parts) == 1:
            return parts[0]

        def every(event: Event) -> bool:  # a loop, not all(): this runs for every event
            for part in parts:  # noqa: SIM110
                if not part(event):
                    return False
            return True

        return every
    if isinstance(node, cond.ConditionOR):
        return _or(list(node.args), fields)
    if isinstance(node, cond.ConditionNOT):
        (inner,) = [compile_condition(a, fields) for a in node.args]
        return lambda event: not inner(event)
    if isinstance(node, cond.ConditionFieldEqualsValueExpression):
        return _field(node.field, node.value, fields)
    if isinstance(node, cond.ConditionValueExpression):
        return _keywords([node.value])
    raise RuleCompileError(f"condition element {type(node).__name__} is not supported")
