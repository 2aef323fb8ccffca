"""AWS CloudTrail records (JSON) as ``api_activity`` events.

A line is either one record or a whole ``{"Records": [...]}`` object; the latter yields one
event per record (`parse_many`; an empty ``Records`` list yields one ``raw`` event). Fields:
``time`` (eventTime), ``action`` (``eventSource:eventName``), ``actor`` (userIdentity.arn,
else its type), ``user`` (userIdentity.userName), ``src_ip`` (sourceIPAddress when it is an
address, else ``src_host``, e.g. ``cloudformation.amazonaws.com``), ``user_agent``,
``region``, ``outcome`` (``failure`` when errorCode is present), ``error_code``,
``error_message``, ``read_only``, ``event_id``, ``account_id`` (recipientAccountId), and
``raw``: the record as compact JSON.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from garrison.events.schema import Event, raw_event, source_field
from garrison.events.syslog import Clock

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_COPIED: Final = (
    ("userAgent", "user_agent"),
    ("awsRegion", "region"),
    ("errorCode", "error_code"),
    ("errorMessage", "error_message"),
    ("eventID", "event_id"),
    ("recipientAccountId", "account_id"),
    ("eventType", "event_type"),
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _compact(value: Any) -> str:
    return _encode(value).decode()


def record_event(record: dict[str, Any], clock: Clock) -> Event:
    """One CloudTrail record (a decoded JSON object) as an ``api_activity`` event."""
    stamp = _text(record.get("eventTime"))
    time = clock.iso(stamp) if stamp else None
    event: Event = {"time": time or clock.reference_iso, "class": "api_activity"}
    if time is None:
        event["time_inferred"] = True
    source, name = _text(record.get("eventSource")), _text(record.get("eventName"))
    if source or name:
        event["action"] = f"{source or ''}:{name or ''}"
    identity = record.get("userIdentity")
    if isinstance(identity, dict):
        actor = _text(identity.get("arn")) or _text(identity.get("type"))
        if actor:
            event["actor"] = actor
        if user := _text(identity.get("userName")):
            event["user"] = user
        if invoked := _text(identity.get("invokedBy")):
            event["invoked_by"] = invoked
    if address := _text(record.get("sourceIPAddress")):
        found = source_field(address)
        key, value = found if found is not None else ("src_host", address)
        event[key] = value
    for field, name in _COPIED:
        if copied := _text(record.get(field)):
            event[name] = copied
    event["outcome"] = "failure" if "error_code" in event else "success"
    read_only = record.get("readOnly")
    if isinstance(read_only, bool):
        event["read_only"] = read_only
    event["raw"] = _compact(record)
    return event


def _is_record(value: dict[str, Any]) -> bool:
    return "eventName" in value or "eventSource" in value or "eventTime" in value


def events_of(value: Any, line: str, clock: Clock) -> list[Event]:
    """The events of a decoded JSON value: a record, or an object with ``Records``."""
    if not isinstance(value, dict):
        return [raw_event(line, "not a JSON object", clock.reference_iso, time_inferred=True)]
    records = value.get("Records")
    if isinstance(records, list):
        events = [
            record_event(record, clock)
            if isinstance(record, dict)
            else raw_event(
                _compact(record),
                "record is not a JSON object",
                clock.reference_iso,
                time_inferred=True,
            )
            for record in records
        ]
        return events or [raw_event(line, "no records", clock.reference_iso, time_inferred=True)]
    if _is_record(value):
        return [record_event(value, clock)]
    return [raw_event(line, "not a CloudTrail record", clock.reference_iso, time_inferred=True)]


def parse_many(line: str, clock: Clock) -> list[Event]:
    """All events of one line (one per record of a ``Records`` object), at least one."""
    try:
        value = _decode(line)
    except msgspec.DecodeError as exc:
        return [raw_event(line, f"not JSON: {exc}", clock.reference_iso, time_inferred=True)]
    return events_of(value, line, clock)


def parse(line: str, clock: Clock) -> Event:
    """One line as one event; a ``Records`` line with several records needs `parse_many`."""
    events = parse_many(line, clock)
    if len(events) == 1:
        return events[0]
    return raw_event(
        line,
        f"{len(events)} records on one line: use parse_lines",
        clock.reference_iso,
        time_inferred=True,
    )


def parse_document(data: bytes, clock: Clock) -> list[Event] | None:
    """The events of a whole (pretty-printed) ``{"Records": [...]}`` file, else None."""
    try:
        value = _decode(data)
    except msgspec.DecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("Records"), list):
        return None
    return events_of(value, data.decode("utf-8", "replace"), clock)


def looks_like_document(first_line: bytes) -> bool:
    """Whether a file whose first line is `first_line` may be one pretty-printed JSON object."""
    if not first_line.lstrip().startswith(b"{"):
        return False
    try:
        _decode(first_line)
    except msgspec.DecodeError:
        return True
    return False
