"""Times given by people: ISO 8601 (``2026-12-01T10:00Z``) or relative (``15m``, ``2h``, ``7d``)."""

from __future__ import annotations

import datetime as dt
import re

from garrison.core.errors import UsageError

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time_ns(text: str, now: dt.datetime | None = None) -> int:
    """Nanoseconds since the epoch for `text`; relative values count back from `now`."""
    text = text.strip()
    now = now or dt.datetime.now(dt.UTC)
    if match := _RELATIVE.match(text):
        try:
            moment = now - dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
        except OverflowError:
            raise UsageError(f"the time span {text!r} reaches beyond year 1") from None
    else:
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"cannot read the time {text!r}",
                hint="use ISO 8601 such as 2026-12-01T10:00Z, or a span back from now: 15m, 2h, 7d",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def iso(time_ns: int) -> str:
    """ISO 8601 UTC for a record time."""
    moment = dt.datetime.fromtimestamp(time_ns / 1e9, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
