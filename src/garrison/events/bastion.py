"""The bastion's connection records: one line when a person is in, one when the connection ends.

sshd says who logged in but not, at its usual log levels, where a jump went nor how much it
carried, and its lines of concurrent connections cannot be told apart. Garrison's bastion runs
one sshd per connection (``sshd -i``), so it knows which lines belong together, and writes a
record of each connection into the bastion's log beside sshd's own lines, as syslog lines of
the program ``garrison-bastion`` whose message is ``connection opened`` or ``connection
closed`` (or ``connection refused``) followed by a JSON object. The sshd parser reads them
into ``network_activity`` events with ``activity`` ``open``, ``close`` or ``refused``.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from garrison.events.schema import Event, set_source

PROGRAM: Final = "garrison-bastion"
_HEAD: Final = "connection "
Activity = Literal["opened", "closed", "refused"]
_ACTIVITY: Final = {"opened": "open", "closed": "close", "refused": "refused"}


class Connection(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    """What the bastion knows of one connection."""

    src_ip: str
    src_port: int
    start: str  # ISO 8601 UTC
    user: str = ""  # the account logged in to (the jump account)
    cert_key_id: str = ""  # who the certificate names
    cert_serial: int | None = None
    authenticated: bool = False  # both methods passed: certificate, then the TOTP code
    targets: list[str] = msgspec.field(default_factory=list)  # HOST:PORT reached (direct-tcpip)
    denied: list[str] = msgspec.field(default_factory=list)  # HOST:PORT asked for and refused
    end: str = ""
    duration_s: float | None = None
    bytes_in: int | None = None  # from the client, TCP payload acknowledged (TCP_INFO)
    bytes_out: int | None = None  # to the client
    reason: str = ""  # why a connection was refused, or how it ended


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Connection)


def message(activity: Activity, connection: Connection) -> str:
    """The log message for `connection` (after ``garrison-bastion[PID]: ``)."""
    return f"{_HEAD}{activity} {_encoder.encode(connection).decode()}"


def parse_message(msg: str, event: Event) -> bool:
    """Fill `event` from a record's message; False when it is not one."""
    activity, _, body = msg.removeprefix(_HEAD).partition(" ")
    if not msg.startswith(_HEAD) or activity not in _ACTIVITY:
        return False
    try:
        record = _decoder.decode(body)
    except msgspec.DecodeError:
        return False
    event["class"] = "network_activity"
    event["activity"] = _ACTIVITY[activity]
    if activity == "refused":
        event["outcome"] = "failure"
    else:
        event["outcome"] = "success" if record.authenticated else "failure"
    set_source(event, record.src_ip)
    event["src_port"] = record.src_port
    for name in ("user", "cert_key_id", "reason", "end"):
        if value := getattr(record, name):
            event[name] = value
    event["start"] = record.start
    for name in ("cert_serial", "duration_s", "bytes_in", "bytes_out"):
        if (number := getattr(record, name)) is not None:
            event[name] = number
    if record.targets:
        event["targets"] = record.targets
        host, _, port = record.targets[0].rpartition(":")
        set_source(event, host.strip("[]"), "dst")
        event["dst_port"] = int(port)
    if record.denied:
        event["denied_targets"] = record.denied
    return True
