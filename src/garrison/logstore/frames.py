"""Record framing: ``length u32 | crc32 u32 | offset u64 | time_ns i64 | payload``.

The CRC covers offset, time and payload, so a torn or flipped frame is recognised. The bytes
after length and CRC (offset, time, payload) are what the Merkle leaf of a record hashes.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

HEADER = struct.Struct("<IIqq")
BODY_PREFIX = struct.Struct("<qq")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 16 * 1024 * 1024


def encode(offset: int, time_ns: int, payload: bytes) -> bytes:
    """One frame."""
    body = BODY_PREFIX.pack(offset, time_ns) + payload
    return struct.pack("<II", len(payload), zlib.crc32(body)) + body


def encode_many(first_offset: int, items: list[tuple[int, bytes]]) -> bytes:
    """Frames for consecutive offsets from `first_offset`; items are (time_ns, payload)."""
    out = bytearray()
    pack_body, pack_head, crc = BODY_PREFIX.pack, struct.Struct("<II").pack, zlib.crc32
    for i, (time_ns, payload) in enumerate(items):
        body = pack_body(first_offset + i, time_ns) + payload
        out += pack_head(len(payload), crc(body))
        out += body
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    """A decoded frame and where it sits in its buffer."""

    offset: int
    time_ns: int
    payload: bytes
    start: int
    end: int

    @property
    def body(self) -> bytes:
        """Offset, time and payload as hashed into the Merkle leaf."""
        return BODY_PREFIX.pack(self.offset, self.time_ns) + self.payload


@dataclass(frozen=True)
class Damage:
    """Where decoding stopped and why; `torn` means only an unfinished tail write."""

    position: int
    reason: str
    torn: bool


@dataclass(frozen=True)
class Index:
    """Where the intact frames of a buffer are, without copying them."""

    bounds: list[int]  # frame i spans bounds[i]:bounds[i + 1]
    offsets: list[int]
    times: list[int]

    def __len__(self) -> int:
        return len(self.offsets)

    def head(self, n: int) -> Index:
        """The first `n` frames only."""
        return Index(self.bounds[: n + 1], self.offsets[:n], self.times[:n])


def index(buf: bytes | memoryview, start: int = 0) -> tuple[Index, Damage | None]:
    """Check frames from `start` (length, CRC) and locate them; stop at the first bad one."""
    view = memoryview(buf)
    bounds: list[int] = [start]
    offsets: list[int] = []
    times: list[int] = []
    pos, size = start, len(view)
    unpack, crc32 = HEADER.unpack_from, zlib.crc32
    damage = None
    while pos < size:
        if size - pos < HEADER_SIZE:
            damage = Damage(pos, "incomplete frame header at the end", torn=True)
            break
        length, crc, offset, time_ns = unpack(view, pos)
        end = pos + HEADER_SIZE + length
        if length > MAX_PAYLOAD:
            damage = Damage(pos, f"frame length {length} is impossible", torn=False)
            break
        if end > size:
            damage = Damage(pos, "frame cut short at the end", torn=True)
            break
        if crc32(view[pos + 8 : end]) != crc:
            if _zeros_to_end(view, pos):
                damage = Damage(pos, "zero-filled tail", torn=True)
            else:
                damage = Damage(pos, "checksum mismatch", torn=end == size)
            break
        bounds.append(end)
        offsets.append(offset)
        times.append(time_ns)
        pos = end
    return Index(bounds, offsets, times), damage


def _zeros_to_end(view: memoryview, pos: int) -> bool:
    """Whether only zero bytes follow `pos`: space a crash left allocated but never written."""
    return not bytes(view[pos:]).strip(b"\0")


def leaf_hashes(
    buf: bytes | memoryview, idx: Index, lo: int = 0, hi: int | None = None
) -> list[bytes]:
    """RFC 6962 leaf hashes of frames ``lo..hi`` of an index (their offset, time and payload)."""
    view = memoryview(buf)
    bounds = idx.bounds
    hi = len(idx) if hi is None else hi
    out = []
    sha = hashlib.sha256
    for i in range(lo, hi):
        h = sha(b"\x00")
        h.update(view[bounds[i] + 8 : bounds[i + 1]])
        out.append(h.digest())
    return out


def scan(buf: bytes | memoryview, start: int = 0) -> tuple[list[Frame], Damage | None]:
    """Decode frames from `start`; stop at the first bad frame and describe it."""
    idx, damage = index(buf, start)
    bounds = idx.bounds
    view = memoryview(buf)
    found = [
        Frame(
            off, t, bytes(view[bounds[i] + HEADER_SIZE : bounds[i + 1]]), bounds[i], bounds[i + 1]
        )
        for i, (off, t) in enumerate(zip(idx.offsets, idx.times, strict=True))
    ]
    return found, damage


def records(buf: bytes | memoryview) -> tuple[list[tuple[int, int, bytes]], Damage | None]:
    """(offset, time_ns, payload) of the intact frames of `buf`, CRC-checked, and any damage."""
    idx, damage = index(buf)
    view, bounds = memoryview(buf), idx.bounds
    items = [
        (off, t, bytes(view[bounds[i] + HEADER_SIZE : bounds[i + 1]]))
        for i, (off, t) in enumerate(zip(idx.offsets, idx.times, strict=True))
    ]
    return items, damage
