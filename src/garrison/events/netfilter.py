"""Netfilter log lines (nftables ``log prefix``, iptables ``-j LOG``) as the kernel writes them.

The kernel message is ``[uptime] PREFIX IN=eth0 OUT= MAC=... SRC=... DST=... LEN=60 ...
PROTO=TCP SPT=51234 DPT=22 ... SYN URGP=0``, carried by a syslog or journal header (or bare,
as ``journalctl -k -o cat`` prints it). Every such line is ``network_activity`` with
``src_ip``/``dst_ip`` (normalized), ports, ``protocol`` (lower-case), interfaces, the log
``prefix``, ``tcp_flags``, ``bytes`` (LEN) and ``ttl`` (TTL, or HOPLIMIT for IPv6);
``action`` is ``drop``/``reject``/``accept`` when the prefix names one. The quoted original
packet of ICMP errors (``[SRC=... ]``) is ignored. Other lines are ``raw`` with a reason.
"""

from __future__ import annotations

import re
from typing import Final

from garrison.events.schema import Event, raw_event, set_source
from garrison.events.syslog import Clock, parse_header

_UPTIME = re.compile(r"\[ *\d+(?:\.\d+)?\] ?")
_PACKET = re.compile(
    r"(?P<prefix>.*?)(?:^| )IN=(?P<in>\S*) OUT=(?P<out>\S*)(?P<rest>.*)", re.DOTALL
)
_ACTION = re.compile(r"(?<![a-z])(drop|reject|accept)", re.IGNORECASE)
_TCP_FLAGS: Final = frozenset({"CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"})
_INTS: Final = {
    "SPT": "src_port",
    "DPT": "dst_port",
    "LEN": "bytes",
    "TTL": "ttl",
    "HOPLIMIT": "ttl",
    "TYPE": "icmp_type",
    "CODE": "icmp_code",
}


def _fields(rest: str) -> tuple[dict[str, str], list[str]]:
    values: dict[str, str] = {}
    bare: list[str] = []
    for token in rest.split("[", 1)[0].split():
        key, sep, value = token.partition("=")
        if sep:
            values.setdefault(key, value)
        else:
            bare.append(token)
    return values, bare


def _packet(m: re.Match[str]) -> Event:
    event: Event = {"time": "", "class": "network_activity"}
    prefix = m["prefix"].strip()
    if prefix:
        event["prefix"] = prefix
        if action := _ACTION.search(prefix):
            event["action"] = action[1].lower()
    if m["in"]:
        event["in_interface"] = m["in"]
    if m["out"]:
        event["out_interface"] = m["out"]
    values, bare = _fields(m["rest"])
    set_source(event, values.get("SRC"))
    set_source(event, values.get("DST"), prefix="dst")
    if mac := values.get("MAC"):
        event["mac"] = mac
    proto = values.get("PROTO")
    if proto:
        event["protocol"] = proto.lower()
    for key, name in _INTS.items():
        value = values.get(key)
        if value and value.isdigit() and len(value) <= 10 and name not in event:
            event[name] = int(value)
    if proto == "TCP":
        event["tcp_flags"] = [flag for flag in bare if flag in _TCP_FLAGS]
    return event


def parse(line: str, clock: Clock) -> Event:
    """One netfilter kernel log line as a ``network_activity`` event."""
    header = parse_header(line, clock)
    if header is None:
        time, host, msg, inferred = clock.reference_iso, None, line, True
    else:
        time, host, _program, _pid, msg, inferred = header
    if m := _UPTIME.match(msg):
        msg = msg[m.end() :]
    found = _PACKET.match(msg) if "IN=" in msg else None
    if found is None or ("SRC=" not in msg and "PROTO=" not in msg):
        fields: dict[str, object] = {"time_inferred": True} if inferred else {}
        if host is not None:
            fields["host"] = host
        return raw_event(line, "not a netfilter log line", time, **fields)
    event = _packet(found)
    event["time"] = time
    if inferred:
        event["time_inferred"] = True
    if host is not None:
        event["host"] = host
    event["raw"] = line
    return event
