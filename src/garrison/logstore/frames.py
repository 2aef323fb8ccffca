"""Record framing: ``length u32 | crc32 u32 | offset u64 | time_ns i64 | payload``.

The CRC covers offset, time and payload, so a torn or flipped frame is recognised. The bytes
after length and CRC (offset, time, payload) are what the Merkle leaf of a record hashes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
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


def scan(buf: bytes | memoryview, start: int = 0) -> tuple[list[Frame], Damage | None]:
    """Decode frames from `start`; stop at the first bad frame and describe it."""
    frames: list[Frame] = []
    pos, size = start, len(buf)
    unpack = HEADER.unpack_from
    while pos < size:
        if size - pos < HEADER_SIZE:
            return frames, Damage(pos, "incomplete frame header at the end", torn=True)
        length, crc, offset, time_ns = unpack(buf, pos)
        end = pos + HEADER_SIZE + length
        if length > MAX_PAYLOAD:
            return frames, Damage(pos, f"frame length {length} is impossible", torn=False)
        if end > size:
            return frames, Damage(pos, "frame cut short at the end", torn=True)
        body = bytes(buf[pos + 8 : end])
        if zlib.crc32(body) != crc:
            if _zeros_to_end(buf, pos):
                return frames, Damage(pos, "zero-filled tail", torn=True)
            return frames, Damage(pos, "checksum mismatch", torn=end == size)
        frames.append(Frame(offset, time_ns, body[16:], pos, end))
        pos = end
    return frames, None


def _zeros_to_end(buf: bytes | memoryview, pos: int) -> bool:
    """Whether only zero bytes follow `pos`: space a crash left allocated but never written."""
    return not bytes(buf[pos:]).strip(b"\0")


def iter_frames(buf: bytes | memoryview) -> Iterator[tuple[int, int, bytes]]:
    """Fast path over trusted, already-verified buffers: (offset, time_ns, payload)."""
    pos, size = 0, len(buf)
    unpack = HEADER.unpack_from
    while pos < size:
        length, _, offset, time_ns = unpack(buf, pos)
        start = pos + HEADER_SIZE
        yield offset, time_ns, bytes(buf[start : start + length])
        pos = start + length
