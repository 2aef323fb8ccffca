"""What the backup engine tells the rest of Garrison: events in a JSON-lines file.

Each base backup, expiry, check and drill appends one event (``process`` ``garrison-backup``)
to the file given with ``--events``; the host's agent ships it like any log (``--watch
jsonl:system:FILE``), the detector's catalog turns failures into findings (a failed drill,
a gap in the WAL, archiving that fails, no fresh base backup), and the console's Backups page
draws the recoverable window and the drill history from them.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path
from typing import Any, Final

import msgspec

from garrison.core.errors import GarrisonError

PROCESS: Final = "garrison-backup"
_encode = msgspec.json.Encoder().encode


def reason(exc: BaseException) -> str:
    """What went wrong, for an event: a Garrison error's message, else the exception."""
    return exc.message if isinstance(exc, GarrisonError) else f"{type(exc).__name__}: {exc}"


def event(activity: str, outcome: str, message: str, **fields: Any) -> dict[str, Any]:
    """A backup event: `activity` (base_backup, expire, check, drill), success or failure."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {
        "time": now,
        "class": "application_log",
        "host": socket.gethostname(),
        "process": PROCESS,
        "activity": activity,
        "outcome": outcome,
        "message": message,
        **fields,
    }


def append(path: Path | None, record: dict[str, Any]) -> None:
    """Append `record` to the events file as one line, durably (nothing when no file)."""
    if path is None:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, _encode(record) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
