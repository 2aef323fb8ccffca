"""Inclusion proofs: show that one record is in the store, checkable with the public key alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from garrison.core.errors import NotFoundError
from garrison.logstore import digests, frames, merkle
from garrison.logstore.digests import SignedDigest
from garrison.logstore.frames import Frame
from garrison.logstore.segment import Sealed
from garrison.logstore.store import LOG_HEADER, Stream


class Proof(msgspec.Struct, frozen=True):
    """Everything a third party needs to check one record against a signed digest."""

    stream: str
    offset: int
    time_ns: int
    payload: str
    file: str
    leaf_index: int
    tree_size: int
    merkle_root: str
    path: list[str]
    digest: SignedDigest


@dataclass(frozen=True)
class ProofCheck:
    """The outcome of checking a proof."""

    ok: bool
    reason: str


def _leaf(offset: int, time_ns: int, payload: bytes) -> bytes:
    return merkle.leaf_hash(frames.BODY_PREFIX.pack(offset, time_ns) + payload)


def _subtree_of(found: list[Frame]) -> Callable[[int, int], bytes]:
    leaves = [merkle.leaf_hash(f.body) for f in found]
    return lambda lo, hi: merkle.root(leaves[lo:hi])


def prove(stream: Stream, offset: int) -> Proof:
    """Build the inclusion proof of the record at `offset` (sealed, or covered by a checkpoint)."""
    chain = [digests.read(p) for p in digests.list_files(stream.digest_dir)]
    for signed in reversed(chain):
        for ref in signed.digest.segments:
            if ref.first <= offset < ref.first + ref.count:
                sealed = Sealed.open(stream.dir / ref.file)
                frame = sealed.block_frames(sealed.block_of(offset))[
                    (offset - ref.first) % merkle.BLOCK
                ]
                return Proof(
                    stream.name,
                    offset,
                    frame.time_ns,
                    frame.payload.decode(),
                    ref.file,
                    offset - ref.first,
                    ref.count,
                    ref.merkle_root,
                    [h.hex() for h in sealed.audit_path(offset)],
                    signed,
                )
        cp = signed.digest.checkpoint
        if cp is not None and cp.first <= offset < cp.first + cp.count:
            found, _ = frames.scan((stream.dir / cp.file).read_bytes(), LOG_HEADER.size)
            found = found[: cp.count]
            frame = found[offset - cp.first]
            path = merkle.audit_path(offset - cp.first, cp.count, _subtree_of(found))
            return Proof(
                stream.name,
                offset,
                frame.time_ns,
                frame.payload.decode(),
                cp.file,
                offset - cp.first,
                cp.count,
                cp.merkle_root,
                [h.hex() for h in path],
                signed,
            )
    raise NotFoundError(
        f"record {offset} of stream {stream.name} is not covered by a digest yet",
        hint="run `garrison store checkpoint` (or wait for the hourly one) and try again",
    )


def check(proof: Proof, public: Ed25519PublicKey) -> ProofCheck:
    """Check a proof with the digest public key only."""
    if not digests.check_signature(proof.digest, public):
        return ProofCheck(False, "the digest is not signed by this public key")
    d = proof.digest.digest
    named = [(r.file, r.first, r.merkle_root, r.count) for r in d.segments]
    if d.checkpoint is not None:
        cp = d.checkpoint
        named.append((cp.file, cp.first, cp.merkle_root, cp.count))
    claimed = (proof.file, proof.offset - proof.leaf_index, proof.merkle_root, proof.tree_size)
    if claimed not in named or d.stream != proof.stream:
        return ProofCheck(False, "the signed digest does not name this segment and root")
    leaf = _leaf(proof.offset, proof.time_ns, proof.payload.encode())
    path = [bytes.fromhex(h) for h in proof.path]
    if not merkle.verify_inclusion(
        leaf, proof.leaf_index, proof.tree_size, path, bytes.fromhex(proof.merkle_root)
    ):
        return ProofCheck(False, "the record does not match the signed Merkle root")
    return ProofCheck(True, f"record {proof.offset} of {proof.stream} is in signed digest {d.seq}")
