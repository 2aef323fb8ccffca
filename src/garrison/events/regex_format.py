"""Application logs in a format of the operator's own: a regex with named groups.

``--format 'regex:(?P<time>\\S+) (?P<level>\\w+) (?P<message>.*)'``: every named group becomes
a field; a `time` group is read as ISO 8601 (or epoch seconds) and the line's time is inferred
when it is missing or unreadable. A line the pattern does not match is kept as `raw`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from garrison.core.errors import UsageError
from garrison.events.schema import Event, raw_event
from garrison.events.syslog import Clock, utc_iso

PREFIX = "regex:"


def compile_format(spec: str) -> re.Pattern[str]:
    """The pattern of a ``regex:...`` format, checked to compile and to name its groups."""
    try:
        pattern = re.compile(spec.removeprefix(PREFIX))
    except re.error as exc:
        raise UsageError(f"the regex format does not compile: {exc}") from None
    if not pattern.groupindex:
        raise UsageError(
            "the regex format names no groups",
            hint="name the fields, e.g. regex:(?P<time>\\S+) (?P<level>\\w+) (?P<message>.*)",
        )
    return pattern


def _time(text: str, clock: Clock) -> str | None:
    try:
        if text.replace(".", "", 1).isdigit():
            return utc_iso(dt.datetime.fromtimestamp(float(text), dt.UTC))
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return utc_iso(moment if moment.tzinfo else moment.replace(tzinfo=clock.zone))


def parser(spec: str, clock: Clock) -> Callable[[str], Event]:
    """A line parser for the ``regex:...`` format `spec`."""
    pattern = compile_format(spec)

    def parse(line: str) -> Event:
        m = pattern.search(line)
        if m is None:
            return raw_event(
                line, "does not match the regex format", clock.reference_iso, time_inferred=True
            )
        fields = {k: v for k, v in m.groupdict().items() if v is not None}
        time = _time(fields.pop("time", ""), clock)
        event: Event = {"time": time or clock.reference_iso, "class": "application_log"}
        if time is None:
            event["time_inferred"] = True
        event.update(fields)
        event["raw"] = line
        return event

    return parse
