"""The parser registry: ``parse_line`` / ``parse_lines`` for the formats in `FORMATS`.

Formats: ``jsonl``, ``sshd``, ``nginx``, ``nft`` (netfilter kernel log lines), ``vpcflow``
(AWS VPC Flow Logs v2) and ``cloudtrail`` (AWS CloudTrail JSON, one record per line or a
``{"Records": [...]}`` object on one line).

Every line yields at least one event and nothing raises; every line yields exactly one,
except a CloudTrail ``Records`` line in `parse_lines` / `events_parser`, which yields one
event per record (`parse_line` and `line_parser` give such a line one ``raw`` event). A
line no parser understands is a class ``raw`` event with a ``reason``. Bytes that are not
UTF-8 are decoded with backslash escapes into a ``raw`` event. Regexes are compiled once at
import, and times and addresses are cached, so the per-line cost is the matches and the
result dict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Final

import msgspec

from garrison.core.errors import UsageError
from garrison.events import cloudtrail, netfilter, nginx, regex_format, vpcflow
from garrison.events.schema import Event, raw_event
from garrison.events.sshd import SshdParser
from garrison.events.syslog import Clock

FORMATS: Final = ("jsonl", "sshd", "nginx", "apache", "nft", "vpcflow", "cloudtrail")
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


def _bind(parse_with: Callable[[str, Clock], Event], clock: Clock) -> Callable[[str], Event]:
    def parse(line: str) -> Event:
        return parse_with(line, clock)

    return parse


_CLOCKED: Final = {
    "nginx": nginx.parse,
    "apache": nginx.parse,  # the same common and combined formats
    "nft": netfilter.parse,
    "vpcflow": vpcflow.parse,
    "cloudtrail": cloudtrail.parse,
}


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
    if format_ in _CLOCKED:
        return _bind(_CLOCKED[format_], clock)
    if format_ == "jsonl":
        return _jsonl(clock)
    if format_.startswith(regex_format.PREFIX):
        return regex_format.parser(format_, clock)
    raise UnknownFormatError(
        f"unknown format {format_!r}; use one of {', '.join(FORMATS)}, or regex:PATTERN"
    )


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
    """One line as one normalized event (no cross-line correlation)."""
    return line_parser(format_, reference_time=reference_time, zone=zone)(line)


def parse_lines(
    format_: str,
    lines: Iterable[str | bytes],
    *,
    reference_time: dt.datetime | None = None,
    zone: dt.tzinfo | str = "UTC",
) -> Iterator[Event]:
    """Each line, in order, as normalized events; sshd lines are correlated by connection.

    Every line yields at least one event, exactly one except a CloudTrail ``Records`` line,
    which yields one event per record.
    """
    if format_ != "cloudtrail":
        return map(line_parser(format_, reference_time=reference_time, zone=zone), lines)
    parse = events_parser(format_, reference_time=reference_time, zone=zone)
    return chain.from_iterable(map(parse, lines))


def line_parser(
    format_: str, *, reference_time: dt.datetime | None = None, zone: dt.tzinfo | str = "UTC"
) -> Callable[[str | bytes], Event]:
    """A parser that never raises, taking str or bytes lines; feed it a file in order."""
    reference_time = reference_time or dt.datetime.now(dt.UTC)
    parse = make_parser(format_, reference_time=reference_time, zone=zone)
    return _safe(parse, Clock(reference_time, zone).reference_iso)


def events_parser(
    format_: str, *, reference_time: dt.datetime | None = None, zone: dt.tzinfo | str = "UTC"
) -> Callable[[str | bytes], list[Event]]:
    """Like `line_parser`, returning a line's events: one, or one per CloudTrail record."""
    if format_ != "cloudtrail":
        single = line_parser(format_, reference_time=reference_time, zone=zone)

        def one(line: str | bytes) -> list[Event]:
            return [single(line)]

        return one
    reference_time = reference_time or dt.datetime.now(dt.UTC)
    clock = Clock(reference_time, zone)
    safe = _safe(_bind(cloudtrail.parse, clock), clock.reference_iso)

    def many(line: str | bytes) -> list[Event]:
        text, bad = _text(line)
        if bad is not None:
            return [safe(line)]
        try:
            return cloudtrail.parse_many(text, clock)
        except Exception:  # a parser bug must not lose the line nor stop the import
            return [safe(text)]

    return many


def document_events(
    format_: str,
    data: bytes,
    *,
    reference_time: dt.datetime | None = None,
    zone: dt.tzinfo | str = "UTC",
) -> list[Event] | None:
    """The events of a whole file that is one JSON document (CloudTrail), else None."""
    if format_ != "cloudtrail":
        return None
    return cloudtrail.parse_document(data, Clock(reference_time, zone))
