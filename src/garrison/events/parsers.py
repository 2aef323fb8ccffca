"""The parser registry: ``parse_line`` / ``parse_lines`` for the formats sshd, nginx, jsonl.

Every line yields exactly one event and nothing raises: a line no parser understands is a
class ``raw`` event with a ``reason``. Bytes that are not UTF-8 are decoded with
backslash escapes into a ``raw`` event. Regexes are compiled once at import, and times and
addresses are cached, so the per-line cost is the matches and the result dict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from typing import Final

import msgspec

from garrison.core.errors import UsageError
from garrison.events import nginx
from garrison.events.schema import Event, raw_event
from garrison.events.sshd import SshdParser
from garrison.events.syslog import Clock

FORMATS: Final = ("jsonl", "sshd", "nginx")
_decode_json = msgspec.json.Decoder().decode


class UnknownFormatError(UsageError):
    """A format name that is not in `FORMATS` (exit 2 at the CLI, 400 in the API)."""


def _jsonl(clock: Clock) -> Callable[[str], Event]:
    def parse(line: str) -> Event:
        try:
            value = _decode_json(line)
        except msgspec.DecodeError as exc:
            return raw_event(line, f"not JSON: {exc}", clock.reference_iso, time_inferred=True)
        if not isinstance(value, dict):
            return raw_event(line, "not a JSON object", clock.reference_iso, time_inferred=True)
        value.setdefault("class", "application_log")
        return value

    return parse


def _nginx(clock: Clock) -> Callable[[str], Event]:
    def parse(line: str) -> Event:
        return nginx.parse(line, clock)

    return parse


def make_parser(
    format_: str,
    *,
    reference_time: dt.datetime | None = None,
    zone: dt.tzinfo | str = "UTC",
    correlate: bool = True,
) -> Callable[[str], Event]:
    """A (possibly stateful) line parser for `format_`; feed it a file's lines in order."""
    clock = Clock(reference_time, zone)
    if format_ == "sshd":
        return SshdParser(clock, correlate=correlate).parse
    if format_ == "nginx":
        return _nginx(clock)
    if format_ == "jsonl":
        return _jsonl(clock)
    raise UnknownFormatError(f"unknown format {format_!r}; use one of {', '.join(FORMATS)}")


def _text(line: str | bytes) -> tuple[str, str | None]:
    if isinstance(line, str):
        return line.rstrip("\r\n"), None
    try:
        return line.decode("utf-8").rstrip("\r\n"), None
    except UnicodeDecodeError as exc:
        return line.decode("utf-8", "backslashreplace").rstrip("\r\n"), f"not UTF-8: {exc}"


def _safe(parse: Callable[[str], Event], clock_iso: str) -> Callable[[str | bytes], Event]:
    def run(line: str | bytes) -> Event:
        if isinstance(line, str):
            text = line.rstrip("\r\n")
        else:
            text, bad = _text(line)
            if bad is not None:
                return raw_event(text, bad, clock_iso, time_inferred=True)
        try:
            return parse(text)
        except Exception as exc:  # a parser bug must not lose the line nor stop the import
            return raw_event(
                text, f"parser error: {type(exc).__name__}", clock_iso, time_inferred=True
            )

    return run


def parse_line(
    format_: str,
    line: str | bytes,
    *,
    reference_time: dt.datetime | None = None,
    zone: dt.tzinfo | str = "UTC",
) -> Event:
    """One line as a normalized event (no cross-line correlation)."""
    return next(parse_lines(format_, [line], reference_time=reference_time, zone=zone))


def parse_lines(
    format_: str,
    lines: Iterable[str | bytes],
    *,
    reference_time: dt.datetime | None = None,
    zone: dt.tzinfo | str = "UTC",
) -> Iterator[Event]:
    """Each line, in order, as a normalized event; sshd lines are correlated by connection."""
    return map(line_parser(format_, reference_time=reference_time, zone=zone), lines)


def line_parser(
    format_: str, *, reference_time: dt.datetime | None = None, zone: dt.tzinfo | str = "UTC"
) -> Callable[[str | bytes], Event]:
    """A parser that never raises, taking str or bytes lines; feed it a file in order."""
    reference_time = reference_time or dt.datetime.now(dt.UTC)
    parse = make_parser(format_, reference_time=reference_time, zone=zone)
    return _safe(parse, Clock(reference_time, zone).reference_iso)
