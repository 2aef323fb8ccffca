"""Syslog headers: RFC 3164 (``Mon dd HH:MM:SS host prog[pid]: msg``), RFC 5424, journal lines.

The journal form is what ``journalctl`` hands to readers such as fail2ban: ``host
prog[pid]: msg`` with no timestamp (the event then takes the reference time and
``time_inferred``). ``journalctl -o short`` and ``-o short-iso`` output are RFC 3164 lines
with a BSD or an ISO timestamp, handled by the same header parser.

Timestamps without a year are placed in the year that puts them no more than one day after
the reference time (so a ``Dec 31`` line read on Jan 1 belongs to the previous year);
timestamps without a zone are read in the configured zone (UTC unless told otherwise).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Final

from garrison.events.schema import Event

_UTC = dt.UTC
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_FUTURE_SLACK = dt.timedelta(days=1)
_CACHE_MAX = 16384
_ISO_FRACTION = re.compile(r"(\.\d{6})\d+")

Header = tuple[str, str | None, str | None, int | None, str, bool]
"""(time, host, program, pid, message, time_inferred)."""


def utc_iso(moment: dt.datetime) -> str:
    """ISO 8601 UTC with ``Z``; microseconds only when the moment has them."""
    moment = moment.astimezone(_UTC)
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def as_zone(zone: dt.tzinfo | str) -> dt.tzinfo:
    """A tzinfo for a zone name (``UTC``, ``Europe/Zurich``) or a tzinfo."""
    if isinstance(zone, dt.tzinfo):
        return zone
    if zone.upper() in {"UTC", "Z"}:
        return _UTC
    return zoneinfo.ZoneInfo(zone)


class Clock:
    """Turns logged timestamps into UTC ISO 8601, against a reference time and a zone."""

    def __init__(self, reference: dt.datetime | None = None, zone: dt.tzinfo | str = "UTC") -> None:
        self.zone = as_zone(zone)
        reference = reference or dt.datetime.now(_UTC)
        if reference.tzinfo is None:
            reference = reference.replace(tzinfo=self.zone)
        self.reference = reference
        self.reference_iso = utc_iso(reference)
        self._limit = reference + _FUTURE_SLACK
        self._local_year = reference.astimezone(self.zone).year
        self._cache: dict[str, str | None] = {}

    def _remember(self, key: str, value: str | None) -> str | None:
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = value
        return value

    def _local(self, year: int, month: int, day: int, hms: str, micro: int) -> dt.datetime:
        hour, minute, second = int(hms[0:2]), int(hms[3:5]), int(hms[6:8])
        return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=self.zone)

    def bsd(self, month_name: str, day: str, hms: str, fraction: str | None = None) -> str | None:
        """``Mon dd HH:MM:SS[.frac]`` in the zone, year chosen against the reference."""
        key = f"{month_name} {day} {hms}.{fraction}"
        try:
            return self._cache[key]
        except KeyError:
            pass
        month = _MONTHS.get(month_name)
        micro = int(fraction.ljust(6, "0")[:6]) if fraction else 0
        found: str | None = None
        if month is not None:
            # Leap days need going back up to 8 years; other dates settle within 3.
            for year in range(self._local_year + 1, self._local_year - 8, -1):
                try:
                    moment = self._local(year, month, int(day), hms, micro)
                except ValueError:
                    continue
                if moment <= self._limit:
                    found = utc_iso(moment)
                    break
        return self._remember(key, found)

    def iso(self, text: str) -> str | None:
        """An ISO 8601 timestamp; without an offset it is read in the zone."""
        try:
            return self._cache[text]
        except KeyError:
            pass
        try:
            moment = dt.datetime.fromisoformat(_ISO_FRACTION.sub(r"\1", text))
        except ValueError:
            return self._remember(text, None)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        try:
            return self._remember(text, utc_iso(moment))
        except (OverflowError, ValueError):
            return self._remember(text, None)

    def numeric(self, year: str, month: str, day: str, hms: str) -> str | None:
        """``YYYY/MM/DD HH:MM:SS`` (nginx error log), read in the zone."""
        key = f"{year}/{month}/{day} {hms}"
        try:
            return self._cache[key]
        except KeyError:
            pass
        try:
            moment = self._local(int(year), int(month), int(day), hms, 0)
        except ValueError:
            return self._remember(key, None)
        return self._remember(key, utc_iso(moment))

    def clf(self, text: str) -> str | None:
        """Common Log Format time, ``20/Jan/2015:19:53:28 +0100``."""
        try:
            return self._cache[text]
        except KeyError:
            pass
        found: str | None = None
        month = _MONTHS.get(text[3:6])
        if month is not None and len(text) >= 20:
            try:
                moment = dt.datetime(
                    int(text[7:11]),
                    month,
                    int(text[0:2]),
                    int(text[12:14]),
                    int(text[15:17]),
                    int(text[18:20]),
                    tzinfo=self.zone,
                )
                offset = text[21:].strip()
                if offset:
                    sign = -1 if offset[0] == "-" else 1
                    minutes = int(offset[1:3]) * 60 + int(offset[3:5])
                    if len(offset) != 5 or offset[0] not in "+-" or minutes >= 24 * 60:
                        raise ValueError(offset)
                    moment = moment.replace(
                        tzinfo=dt.timezone(sign * dt.timedelta(minutes=minutes))
                    )
                found = utc_iso(moment)
            except (ValueError, OverflowError):
                found = None
        return self._remember(text, found)


_BSD = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?:(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<hms>\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,9}))?"
    r"|(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?))"
    r" +(?:(?P<host>[^\s\[\]:]+) )?"
    r"(?:(?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>\d{1,10})\])?:|\[(?P<bprog>[^\s\[\]]+)\]:?)"
    r" ?(?P<msg>.*)",
    re.DOTALL,
)
_RFC5424 = re.compile(
    r"<\d{1,3}>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
    r"(?P<sd>-|(?:\[(?:[^\]\"\\]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+)(?: (?P<msg>.*))?",
    re.DOTALL,
)
_JOURNAL = re.compile(
    r"(?P<host>[^\s\[\]:]+) (?P<prog>[^\s\[\]:]+)\[(?P<pid>\d{1,10})\]: ?(?P<msg>.*)", re.DOTALL
)


def _nil(value: str | None) -> str | None:
    return None if value in {None, "-"} else value


def parse_header(line: str, clock: Clock) -> Header | None:
    """The syslog header of `line`, or None when it has none of the known shapes."""
    if line.startswith("<") and (m := _RFC5424.match(line)):
        time = clock.iso(m["ts"])
        if time is None:
            return None
        procid = m["procid"]
        msg = m["msg"] or ""
        return (
            time,
            _nil(m["host"]),
            _nil(m["app"]),
            int(procid) if procid.isdigit() and len(procid) <= 10 else None,
            msg.removeprefix("\ufeff"),
            False,
        )
    if m := _BSD.match(line):
        mon, day, hms, frac, iso_text, host, prog, pid, bprog, msg = m.groups()
        time = clock.iso(iso_text) if iso_text else clock.bsd(mon, day, hms, frac)
        if time is not None:
            return (time, host, prog or bprog, int(pid) if pid else None, msg, False)
    if m := _JOURNAL.match(line):
        return (clock.reference_iso, m["host"], m["prog"], int(m["pid"]), m["msg"], True)
    return None


def application_event(
    time: str, host: str | None, program: str | None, pid: int | None, msg: str, inferred: bool
) -> Event:
    """The generic event of a syslog-carried line (sources refine it when they recognise it)."""
    event: Event = {"time": time, "class": "application_log"}
    if inferred:
        event["time_inferred"] = True
    if host is not None:
        event["host"] = host
    if program is not None:
        event["process"] = program
    if pid is not None:
        event["pid"] = pid
    event["message"] = msg
    return event
