"""Sealed segments: frames grouped in zstd blocks of `merkle.BLOCK` records, with a footer index.

Layout: ``MAGIC | block... | footer (JSON) | footer length u32 | END``. The footer lists each
block's file position, offsets, time range and Merkle root, and the segment's Merkle root, so a
query reads only the blocks whose time range it needs and a proof reads one block.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import zstandard

from garrison.core.files import fsync_dir
from garrison.logstore import merkle
from garrison.logstore.frames import Frame, Index, index, leaf_hashes, scan

MAGIC = b"GRSEG01\n"
END = b"GRSEGEND"
_TAIL = struct.Struct("<I")
ZSTD_LEVEL = 3


class BlockMeta(msgspec.Struct, frozen=True):
    """Where one block lies in the file and what it holds."""

    pos: int
    length: int
    first: int
    count: int
    min_time_ns: int
    max_time_ns: int
    root: str


class Footer(msgspec.Struct, frozen=True):
    """The index of a sealed segment."""

    version: int
    stream: str
    first: int
    count: int
    min_time_ns: int
    max_time_ns: int
    merkle_root: str
    blocks: list[BlockMeta]


class SegmentError(Exception):
    """A sealed segment cannot be read (damaged or not a segment)."""


def name_for(first: int, suffix: str) -> str:
    """File name of the segment that starts at offset `first`."""
    return f"{first:020d}{suffix}"


def first_of(path: Path) -> int:
    """The first offset encoded in a segment file name."""
    return int(path.name[:20])


def block_root(frames: Sequence[Frame]) -> bytes:
    """Merkle root of one block's records."""
    return merkle.root([merkle.leaf_hash(f.body) for f in frames])


def write(path: Path, stream: str, raw: bytes, idx: Index) -> tuple[Footer, str]:
    """Write the frames `idx` locates in `raw` as a sealed segment; returns footer and SHA-256."""
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
    view = memoryview(raw)
    bounds = idx.bounds
    tmp = path.with_suffix(".tmp")
    digest = hashlib.sha256()
    blocks: list[BlockMeta] = []
    roots: list[bytes] = []
    with tmp.open("wb") as fh:
        fh.write(MAGIC)
        digest.update(MAGIC)
        pos = len(MAGIC)
        for lo in range(0, len(idx), merkle.BLOCK):
            hi = min(lo + merkle.BLOCK, len(idx))
            data = compressor.compress(view[bounds[lo] : bounds[hi]])
            fh.write(data)
            digest.update(data)
            root = merkle.root(leaf_hashes(view, idx, lo, hi))
            roots.append(root)
            times = idx.times[lo:hi]
            blocks.append(
                BlockMeta(
                    pos, len(data), idx.offsets[lo], hi - lo, min(times), max(times), root.hex()
                )
            )
            pos += len(data)
        footer = Footer(
            version=1,
            stream=stream,
            first=idx.offsets[0],
            count=len(idx),
            min_time_ns=min(b.min_time_ns for b in blocks),
            max_time_ns=max(b.max_time_ns for b in blocks),
            merkle_root=merkle.root(roots).hex(),
            blocks=blocks,
        )
        tail = msgspec.json.encode(footer)
        tail += _TAIL.pack(len(tail)) + END
        fh.write(tail)
        digest.update(tail)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return footer, digest.hexdigest()


@dataclass
class Sealed:
    """A sealed segment opened for reading (footer loaded, blocks read on demand)."""

    path: Path
    footer: Footer

    @classmethod
    def open(cls, path: Path) -> Sealed:
        """Read the footer; raises `SegmentError` if the file is not an intact segment."""
        try:
            with path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                if size < len(MAGIC) + _TAIL.size + len(END):
                    raise SegmentError("file too short to be a segment")
                fh.seek(size - _TAIL.size - len(END))
                (length,) = _TAIL.unpack(fh.read(_TAIL.size))
                if fh.read(len(END)) != END or length > size:
                    raise SegmentError("segment end marker missing")
                fh.seek(size - _TAIL.size - len(END) - length)
                footer = msgspec.json.decode(fh.read(length), type=Footer)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SegmentError(f"footer unreadable: {exc}") from None
        return cls(path, footer)

    @property
    def last(self) -> int:
        """The last offset in this segment."""
        return self.footer.first + self.footer.count - 1

    def read_block(self, index: int) -> bytes:
        """The decompressed frames of block `index`."""
        meta = self.footer.blocks[index]
        if meta.pos < 0 or meta.length < 0:
            raise SegmentError(f"block {index} has an impossible position in the footer")
        try:
            with self.path.open("rb") as fh:
                fh.seek(meta.pos)
                data = fh.read(meta.length)
        except (OSError, OverflowError) as exc:
            raise SegmentError(f"block {index} is unreadable: {exc}") from None
        return _decompress(data, index)

    def block_frames(self, index: int) -> list[Frame]:
        """Decoded frames of block `index` (stops at the first damaged frame)."""
        frames, _ = scan(self.read_block(index))
        return frames

    def prefix_root(self, count: int) -> str:
        """Merkle root of the first `count` records (what a checkpoint signed before the seal)."""
        full, rest = divmod(count, merkle.BLOCK)
        roots = [bytes.fromhex(b.root) for b in self.footer.blocks[:full]]
        if rest:
            raw = self.read_block(full)
            idx, _ = index(raw)
            roots.append(merkle.root(leaf_hashes(raw, idx, 0, rest)))
        return merkle.root(roots).hex()

    def block_of(self, offset: int) -> int:
        """Index of the block holding `offset`."""
        return (offset - self.footer.first) // merkle.BLOCK

    def audit_path(self, offset: int) -> list[bytes]:
        """Inclusion proof of `offset` against the segment's Merkle root."""
        index = offset - self.footer.first
        bi = self.block_of(offset)
        leaves = [merkle.leaf_hash(f.body) for f in self.block_frames(bi)]
        roots = [bytes.fromhex(b.root) for b in self.footer.blocks]
        base = bi * merkle.BLOCK

        def subtree(lo: int, hi: int) -> bytes:
            if lo >= base and hi <= base + merkle.BLOCK:
                return merkle.root(leaves[lo - base : hi - base])
            first_block, end_block = lo // merkle.BLOCK, -(-hi // merkle.BLOCK)
            return merkle.root(roots[first_block:end_block])

        return merkle.audit_path(index, self.footer.count, subtree)


_ONE_SHOT_LIMIT = 64 * 1024 * 1024


def _decompress(data: bytes, index: int) -> bytes:
    """Decompress one block; damage is a `SegmentError`, never a crash.

    The one-shot API allocates the content size the frame header claims, so it is used only
    when that claim is modest; otherwise (a large block, or a damaged header claiming
    exabytes) the frame is streamed, which allocates only what really comes out.
    """
    try:
        declared = zstandard.frame_content_size(data)
        if 0 < declared <= _ONE_SHOT_LIMIT:
            return zstandard.ZstdDecompressor().decompress(data)
        decompressor = zstandard.ZstdDecompressor().decompressobj()
        out = decompressor.decompress(data)
    except zstandard.ZstdError as exc:
        raise SegmentError(f"block {index} does not decompress: {exc}") from None
    if not decompressor.eof or decompressor.unused_data:
        raise SegmentError(f"block {index} does not decompress: not one whole zstd frame")
    return out


def file_sha256(path: Path) -> str:
    """SHA-256 of a whole file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
