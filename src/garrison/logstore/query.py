"""Log search: ``field=value AND field!=value AND field~text`` over a time range, streamed.

Time ranges prune whole segments and blocks through their footers; `=` conditions also skip
records whose raw bytes cannot contain the value before any JSON is decoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from garrison.core.errors import UsageError
from garrison.logstore.segment import Sealed, SegmentError
from garrison.logstore.store import Record, Stream, block_records

_TERM = re.compile(
    r"\s*(?P<field>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>!=|=|~)\s*"
    r'(?P<value>"(?:[^"\\]|\\.)*"|[^\s"]+)\s*'
)
_AND = re.compile(r"\s*AND\s+", re.IGNORECASE)
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True)
class Condition:
    """One comparison of a field (dotted for nested fields) with a value."""

    field: str
    op: str
    value: str

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether `event` satisfies this condition."""
        current: Any = event
        for part in self.field.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        text = _as_text(current)
        if self.op == "=":
            return text == self.value
        if self.op == "!=":
            return text != self.value
        return self.value.lower() in text.lower()


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse(text: str) -> list[Condition]:
    """Parse a query; an empty query matches everything."""
    text = text.strip()
    if not text:
        return []
    conditions: list[Condition] = []
    pos = 0
    while pos < len(text):
        match = _TERM.match(text, pos)
        if match is None:
            raise UsageError(
                f"cannot read the query at column {pos + 1}: {text[pos : pos + 20]!r}",
                hint='write conditions like src_ip=1.2.3.4 AND outcome!=success AND path~"/admin"',
            )
        value = match["value"]
        if value.startswith('"'):
            try:
                value = msgspec.json.decode(value.encode(), type=str)
            except msgspec.DecodeError:
                raise UsageError(
                    f"the quoted value at column {match.start('value') + 1} is not valid",
                    hint='quote like JSON: path~"/admin \\"x\\""',
                ) from None
        conditions.append(Condition(match["field"], match["op"], value))
        pos = match.end()
        if pos < len(text):
            joiner = _AND.match(text, pos)
            if joiner is None:
                raise UsageError(
                    f"expected AND at column {pos + 1} of the query",
                    hint="conditions are joined by AND",
                )
            pos = joiner.end()
    return conditions


def _needles(conditions: list[Condition]) -> list[bytes]:
    return [msgspec.json.encode(c.value)[1:-1] for c in conditions if c.op == "=" and c.value]


def search(
    stream: Stream,
    conditions: list[Condition],
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    limit: int | None = 100,
    newest_first: bool = True,
) -> Iterator[Record]:
    """Records of `stream` in ``[since, until)`` that match every condition, streamed."""
    lo = since_ns if since_ns is not None else -(2**63)
    hi = until_ns if until_ns is not None else 2**63 - 1
    needles = _needles(conditions)
    found = 0

    def keep(time_ns: int, payload: bytes) -> bool:
        if not lo <= time_ns < hi:
            return False
        if any(n not in payload for n in needles):
            return False
        if not conditions:
            return True
        event = _decode(payload)
        return isinstance(event, dict) and all(c.matches(event) for c in conditions)

    def sealed_records(path: Any) -> Iterator[tuple[int, int, bytes]]:
        try:
            sealed = Sealed.open(path)
        except (SegmentError, FileNotFoundError):
            return
        if sealed.footer.max_time_ns < lo or sealed.footer.min_time_ns >= hi:
            return
        order = range(len(sealed.footer.blocks))
        for bi in reversed(order) if newest_first else order:
            meta = sealed.footer.blocks[bi]
            if meta.max_time_ns < lo or meta.min_time_ns >= hi:
                continue
            try:
                items = block_records(sealed, bi)
            except FileNotFoundError:  # expired by retention while we read
                continue
            yield from reversed(items) if newest_first else items

    def active() -> Iterator[tuple[int, int, bytes]]:
        items = [(f.offset, f.time_ns, f.payload) for f in stream.active_records()]
        yield from reversed(items) if newest_first else items

    def everything() -> Iterator[tuple[int, int, bytes]]:
        paths = stream.sealed_segments()
        if newest_first:
            yield from active()
            for path in reversed(paths):
                yield from sealed_records(path)
        else:
            for path in paths:
                yield from sealed_records(path)
            yield from active()

    if limit is not None and limit <= 0:
        return
    for offset, time_ns, payload in everything():
        if keep(time_ns, payload):
            yield Record(stream.name, offset, time_ns, payload)
            found += 1
            if limit is not None and found >= limit:
                return
