"""WAL file names and LSNs (16 MiB segments, PostgreSQL's default)."""

from __future__ import annotations

import re
from typing import Final

from garrison.core.errors import ValidationError

SEGMENT_BYTES: Final = 16 * 1024 * 1024
_PER_LOG: Final = 0x1_0000_0000 // SEGMENT_BYTES  # segments per 4 GiB "log file"
SEGMENT_RE: Final = re.compile(r"^[0-9A-F]{24}$")
#: What PostgreSQL archives besides segments: timeline history and backup history files; and
#: the segment being streamed (pg_receivewal's ``.partial``).
OTHER_RE: Final = re.compile(
    r"^(?:[0-9A-F]{8}\.history|[0-9A-F]{24}\.[0-9A-F]{8}\.backup|[0-9A-F]{24}\.partial)$"
)
PARTIAL: Final = ".partial"
_LSN_RE: Final = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def check_name(name: str) -> str:
    """`name` when it is a WAL file name PostgreSQL archives, else a ValidationError."""
    if SEGMENT_RE.match(name) or OTHER_RE.match(name):
        return name
    raise ValidationError(
        f"{name!r} is not a WAL file name",
        hint="archive_command passes %f: a 24-hex-digit segment, a .history or a .backup file",
    )


def parse_lsn(text: str) -> int:
    """``16/B374D848`` as a number."""
    found = _LSN_RE.match(text.strip())
    if found is None:
        raise ValidationError(f"{text!r} is not an LSN", hint="write it like 0/3000028")
    return (int(found[1], 16) << 32) | int(found[2], 16)


def format_lsn(lsn: int) -> str:
    """A number as PostgreSQL writes an LSN."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segment_number(name: str) -> tuple[int, int]:
    """(timeline, segment number) of a segment file name."""
    if not SEGMENT_RE.match(name):
        raise ValidationError(f"{name!r} is not a WAL segment name")
    return int(name[:8], 16), int(name[8:16], 16) * _PER_LOG + int(name[16:], 16)


def segment_name(timeline: int, number: int) -> str:
    """The file name of segment `number` of `timeline`."""
    return f"{timeline:08X}{number // _PER_LOG:08X}{number % _PER_LOG:08X}"


def segment_of(timeline: int, lsn: int) -> str:
    """The segment holding `lsn`."""
    return segment_name(timeline, lsn // SEGMENT_BYTES)
