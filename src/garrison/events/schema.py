"""The normalized event every parser produces: a plain dict with OCSF-inspired field names.

Always present: ``time`` (ISO 8601 UTC ending in ``Z``), ``class`` (one of `CLASSES`) and
``raw`` (the original line). Present when known: ``host`` (the logging host; once shipped,
the certified Garrison host, with a different name the line gave kept in ``logged_host``,
see `certify_host`), ``src_ip``
(an IP address normalized by `ipaddress`: IPv6 compressed, IPv4-mapped IPv6 as IPv4),
``src_host`` (a source given by name, or an address `ipaddress` refuses, kept as written),
``src_port``, ``user``, ``outcome`` (one of `OUTCOMES`), and source-specific fields
(sshd: ``process``, ``pid``, ``message``, ``auth_method``, ``invalid_user``, ``preauth``;
nginx: ``method``, ``path``, ``path_decoded``, ``protocol``, ``status``, ``bytes``,
``referrer``, ``user_agent``; nft and vpcflow: ``dst_ip``, ``dst_port``, ``protocol``,
``action``, ``bytes``; cloudtrail: ``action``, ``actor``, ``region``). A line no parser
understands becomes class ``raw`` with a ``reason``; ``time_inferred`` is true when the line
carried no time and the reference time was used instead.

Addresses such as ``192.030.0.6`` (leading zeros) are ambiguous: ``inet_aton`` reads them as
octal (192.24.0.6), others as decimal. They are never guessed into ``src_ip``; they stay in
``src_host`` exactly as logged, which is also how fail2ban treats them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Final

Event = dict[str, Any]

CLASSES: Final = frozenset(
    {
        "authentication",
        "http_activity",
        "network_activity",
        "api_activity",
        "application_log",
        "raw",
    }
)
OUTCOMES: Final = frozenset({"success", "failure", "unknown"})

_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
_CACHE_MAX = 65536
_address_cache: dict[str, tuple[str, str] | None] = {}
_MISSING: Final[tuple[str, str]] = ("", "missing")  # a sentinel, compared by identity


def _classify_address(text: str) -> tuple[str, str] | None:
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        if _HOSTNAME.fullmatch(candidate):
            return ("src_host", candidate)
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ("src_ip", str(ip.ipv4_mapped))
    return ("src_ip", str(ip))


def source_field(text: str) -> tuple[str, str] | None:
    """``("src_ip", normalized)`` or ``("src_host", name)`` for a logged source, else None."""
    found = _address_cache.get(text, _MISSING)
    if found is _MISSING:
        if len(_address_cache) >= _CACHE_MAX:
            _address_cache.clear()
        found = _address_cache[text] = _classify_address(text)
    return found


def set_source(event: Event, text: str | None, prefix: str = "src") -> None:
    """Put a logged source address or name into `event` (``src_ip`` or ``src_host``)."""
    if not text:
        return
    found = _address_cache.get(text, _MISSING)
    if found is _MISSING:
        found = source_field(text)
    if found is not None:
        key, value = found
        event[key if prefix == "src" else prefix + key[3:]] = value


def certify_host(event: Event, host: str) -> Event:
    """Stamp `event` with the Garrison `host` it came from; a different logged name is kept.

    A line's own host name (a syslog header, a JSON ``host`` key) is what the machine calls
    itself, often not its enrolled name: it moves to ``logged_host`` so that ``host`` is always
    the certified identity, and a host cannot make its events look like another's.
    """
    logged = event.get("host")
    if logged is not None and str(logged).lower() != host:
        event["logged_host"] = logged
    event["host"] = host
    return event


def raw_event(line: str, reason: str, time: str, **fields: Any) -> Event:
    """The event for a line no parser understood: class ``raw`` with the reason."""
    event: Event = {"time": time, "class": "raw", "reason": reason}
    event.update(fields)
    event["raw"] = line
    return event


def problems(event: Event) -> list[str]:
    """What is wrong with `event` against the schema (empty when it conforms)."""
    found: list[str] = []
    time = event.get("time")
    if not isinstance(time, str) or not time.endswith("Z"):
        found.append(f"time {time!r} is not ISO 8601 UTC with Z")
    if event.get("class") not in CLASSES:
        found.append(f"class {event.get('class')!r} is unknown")
    if not isinstance(event.get("raw"), str):
        found.append("raw line missing")
    if "outcome" in event and event["outcome"] not in OUTCOMES:
        found.append(f"outcome {event['outcome']!r} is unknown")
    if event.get("class") == "raw" and not event.get("reason"):
        found.append("raw event without a reason")
    if "src_ip" in event:
        try:
            ipaddress.ip_address(event["src_ip"])
        except ValueError:
            found.append(f"src_ip {event['src_ip']!r} is not an IP address")
    return found
