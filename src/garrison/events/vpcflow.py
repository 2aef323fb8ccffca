"""AWS VPC Flow Logs, version 2 default text format (14 space-separated fields).

``version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes
start end action log-status``, ``-`` for a missing value. Records are ``network_activity``
timed by ``start`` (``end_time`` from ``end``); ``NODATA``/``SKIPDATA`` records are kept
with their ``log_status``. The header line is a ``raw`` event with reason ``vpc flow log
header``. A leading ISO timestamp (CloudWatch Logs export) is dropped.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from garrison.events.schema import Event, raw_event, set_source
from garrison.events.syslog import Clock, utc_iso

_FIELDS: Final = 14
_PROTOCOLS: Final = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp"}
_INTS: Final = ((5, "src_port"), (6, "dst_port"), (8, "packets"), (9, "bytes"))


def _epoch(text: str) -> str | None:
    if not text.isdigit() or len(text) > 12:
        return None
    try:
        return utc_iso(dt.datetime.fromtimestamp(int(text), dt.UTC))
    except (OverflowError, ValueError, OSError):
        return None


def parse(line: str, clock: Clock) -> Event:
    """One VPC flow log record as a ``network_activity`` event."""
    parts = line.split()
    if len(parts) == _FIELDS + 1 and parts[0][:1].isdigit() and "T" in parts[0]:
        parts = parts[1:]
    if parts[:2] == ["version", "account-id"]:
        return raw_event(line, "vpc flow log header", clock.reference_iso, time_inferred=True)
    if len(parts) != _FIELDS or not parts[0].isdigit():
        return raw_event(
            line, "not a VPC flow log v2 record", clock.reference_iso, time_inferred=True
        )
    start = _epoch(parts[10])
    event: Event = {"time": start or clock.reference_iso, "class": "network_activity"}
    if start is None:
        event["time_inferred"] = True
    if (end := _epoch(parts[11])) is not None:
        event["end_time"] = end
    event["version"] = int(parts[0]) if len(parts[0]) <= 10 else parts[0]
    for index, key in ((1, "account_id"), (2, "interface_id")):
        if parts[index] != "-":
            event[key] = parts[index]
    set_source(event, None if parts[3] == "-" else parts[3])
    set_source(event, None if parts[4] == "-" else parts[4], prefix="dst")
    for index, key in _INTS:
        value = parts[index]
        if value.isdigit() and len(value) <= 20:
            event[key] = int(value)
    if parts[7] != "-":
        event["protocol"] = _PROTOCOLS.get(parts[7], parts[7])
    if parts[12] != "-":
        event["action"] = parts[12].lower()
    if parts[13] != "-":
        event["log_status"] = parts[13]
    event["raw"] = line
    return event
