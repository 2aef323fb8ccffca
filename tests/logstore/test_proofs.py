"""Inclusion proofs checked with the public key alone, and the RFC 6962 Merkle tree under them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.core.errors import NotFoundError
from garrison.logstore import digests, merkle, proofs
from garrison.logstore.digests import Signer
from garrison.logstore.proofs import Proof
from garrison.logstore.store import Store, StoreConfig, Stream
from tests.logstore.helpers import event

# --- a reference RFC 6962 implementation, written straight from the RFC ------------------------


def mth(data: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 section 2.1, recursively."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two smaller than n
    return hashlib.sha256(b"\x01" + mth(data[:k]) + mth(data[k:])).digest()


def rfc_path(m: int, data: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1."""
    n = len(data)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*rfc_path(m, data[:k]), mth(data[k:])]
    return [*rfc_path(m - k, data[k:]), mth(data[:k])]


def leaves_of(n: int) -> list[bytes]:
    """`n` distinct leaf inputs."""
    return [f"leaf {i}".encode() for i in range(n)]


SIZES = [*range(1, 71), 1023, 1024, 1025, 2047, 2048, 2049, 3071, 3072, 3073]


@pytest.mark.parametrize("n", SIZES)
def test_root_equals_recursive_mth(n: int) -> None:
    """The bottom-up root equals RFC 6962's recursive MTH for sizes 1..70 and near 1024·k."""
    data = leaves_of(n)
    assert merkle.root([merkle.leaf_hash(d) for d in data]) == mth(data)


def test_empty_tree_root() -> None:
    """The root of no leaves is SHA-256 of the empty string, as RFC 6962 says."""
    assert merkle.root([]) == hashlib.sha256(b"").digest() == mth([])


def _subtree(data: list[bytes]) -> Callable[[int, int], bytes]:
    asked: list[tuple[int, int]] = []

    def subtree(lo: int, hi: int) -> bytes:
        asked.append((lo, hi))
        return mth(data[lo:hi])

    return subtree


@pytest.mark.parametrize("n", range(1, 34))
def test_audit_path_of_every_index(n: int) -> None:
    """For every leaf of small trees the path is RFC 6962's PATH and verifies; wrong ones fail."""
    data = leaves_of(n)
    root = mth(data)
    for i in range(n):
        leaf = merkle.leaf_hash(data[i])
        path = merkle.audit_path(i, n, _subtree(data))
        assert path == rfc_path(i, data)
        assert merkle.verify_inclusion(leaf, i, n, path, root)
        assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), i, n, path, root)
        assert not merkle.verify_inclusion(leaf, i, n, path, merkle.leaf_hash(b"x"))
        assert not merkle.verify_inclusion(leaf, n + i, n, path, root)
        assert not merkle.verify_inclusion(leaf, i, n, [*path, root], root)
        if n > 1:
            assert not merkle.verify_inclusion(leaf, (i + 1) % n, n, path, root)
            assert not merkle.verify_inclusion(leaf, i, n, path[:-1], root)
            bent = bytearray(path[0])
            bent[0] ^= 1
            assert not merkle.verify_inclusion(leaf, i, n, [bytes(bent), *path[1:]], root)


@settings(derandomize=True, database=None, deadline=None, max_examples=60)
@given(n=st.integers(1, 5000), data=st.data())
def test_audit_paths_verify_in_large_trees(n: int, data: st.DataObject) -> None:
    """Audit paths computed from subtree roots verify in trees of up to 5000 leaves."""
    items = leaves_of(n)
    hashes = [merkle.leaf_hash(d) for d in items]
    i = data.draw(st.integers(0, n - 1))
    path = merkle.audit_path(i, n, lambda lo, hi: merkle.root(hashes[lo:hi]))
    assert merkle.verify_inclusion(hashes[i], i, n, path, merkle.root(hashes))
    assert len(path) <= (n - 1).bit_length()


@pytest.mark.parametrize("n", [1, 5, 1023, 1024, 1025, 2048, 2500, 3 * 1024 + 7])
def test_block_roots_compose_into_the_full_root(n: int) -> None:
    """The root over per-block roots (1024 leaves each) is the root over all leaves."""
    hashes = [merkle.leaf_hash(d) for d in leaves_of(n)]
    blocks = [merkle.root(hashes[b : b + merkle.BLOCK]) for b in range(0, n, merkle.BLOCK)]
    assert merkle.root(blocks) == merkle.root(hashes) == mth(leaves_of(n))


# --- proofs of stored records ---------------------------------------------------------------------


@pytest.fixture
def proven(root: Path, signer: Signer) -> Iterator[Stream]:
    """A stream with a two-block sealed segment, a small one, and a checkpointed active log."""
    store = Store(root, signer=signer, config=StoreConfig(segment_bytes=1 << 20))
    stream = store.stream("audit")
    store.append("audit", [event(i) for i in range(1500)])
    stream.seal()
    store.append("audit", [event(i, note="é ✓") for i in range(1500, 1540)])
    stream.seal()
    store.append("audit", [event(i) for i in range(1540, 1570)])
    stream.checkpoint()
    store.append("audit", [event(1570)])  # not signed yet
    yield stream
    store.close()


SEALED = [0, 1, 511, 1023, 1024, 1025, 1499, 1500, 1539]
ACTIVE = [1540, 1541, 1555, 1569]


def _public_from_pem(key_path: Path) -> object:
    """The public key as a third party gets it: the exported PEM file."""
    return digests.load_public(key_path.with_suffix(".pub").read_bytes())


@pytest.mark.parametrize("offset", SEALED + ACTIVE)
def test_proof_checks_out_with_only_the_public_key(
    proven: Stream, key_path: Path, signer: Signer, offset: int
) -> None:
    """A proof of a sealed or checkpointed record, shipped as JSON, checks with the PEM key."""
    proof = proofs.prove(proven, offset)
    assert proof.offset == offset
    assert msgspec.json.decode(proof.payload)["id"] == offset
    assert proof.file.endswith(".seg" if offset in SEALED else ".log")
    shipped = msgspec.json.decode(msgspec.json.encode(proof), type=Proof)
    public = _public_from_pem(key_path)
    assert digests.public_pem(public) == digests.public_pem(signer.public)  # type: ignore[arg-type]
    result = proofs.check(shipped, public)  # type: ignore[arg-type]
    assert result.ok, result.reason


def test_unsigned_record_has_no_proof_yet(proven: Stream) -> None:
    """A record after the last checkpoint cannot be proven until a digest covers it."""
    with pytest.raises(NotFoundError, match="not covered"):
        proofs.prove(proven, 1570)
    proven.checkpoint()
    assert proofs.check(proofs.prove(proven, 1570), proven.signer.public).ok  # type: ignore[union-attr]


def _bend(hex_hash: str) -> str:
    return ("1" if hex_hash[0] == "0" else "0") + hex_hash[1:]


FORGERIES: dict[str, Callable[[Proof, Signer], Proof]] = {
    "payload changed": lambda p, _: msgspec.structs.replace(
        p, payload=p.payload.replace('"id":', '"id":1')
    ),
    "payload one space longer": lambda p, _: msgspec.structs.replace(p, payload=p.payload + " "),
    "time changed": lambda p, _: msgspec.structs.replace(p, time_ns=p.time_ns + 1),
    "offset changed": lambda p, _: msgspec.structs.replace(p, offset=p.offset + 1),
    "leaf index changed": lambda p, _: msgspec.structs.replace(
        p, leaf_index=(p.leaf_index + 1) % p.tree_size
    ),
    "offset and leaf index shifted together": lambda p, _: msgspec.structs.replace(
        p, offset=p.offset + 1, leaf_index=p.leaf_index + 1
    ),
    "tree size changed": lambda p, _: msgspec.structs.replace(p, tree_size=p.tree_size + 1),
    "stream changed": lambda p, _: msgspec.structs.replace(p, stream="other"),
    "path element changed": lambda p, _: msgspec.structs.replace(
        p, path=[_bend(p.path[0]), *p.path[1:]]
    ),
    "path element dropped": lambda p, _: msgspec.structs.replace(p, path=p.path[1:]),
    "path element added": lambda p, _: msgspec.structs.replace(p, path=[*p.path, p.merkle_root]),
    "path reversed": lambda p, _: msgspec.structs.replace(p, path=p.path[::-1]),
    "root changed": lambda p, _: msgspec.structs.replace(p, merkle_root=_bend(p.merkle_root)),
    "digest re-signed by another key": lambda p, other: msgspec.structs.replace(
        p, digest=other.sign(p.digest.digest)
    ),
    "digest edited, signature kept": lambda p, _: msgspec.structs.replace(
        p, digest=msgspec.structs.replace(p.digest, digest=_with_root(p, _bend(p.merkle_root)))
    ),
}


def _with_root(proof: Proof, new_root: str) -> digests.Digest:
    d = proof.digest.digest
    segments = [
        msgspec.structs.replace(r, merkle_root=new_root) if r.file == proof.file else r
        for r in d.segments
    ]
    cp = d.checkpoint
    if cp is not None and cp.file == proof.file:
        cp = msgspec.structs.replace(cp, merkle_root=new_root)
    return msgspec.structs.replace(d, segments=segments, checkpoint=cp)


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
@pytest.mark.parametrize("offset", [0, 1024, 1499, 1539, 1541, 1569])
def test_forged_proof_fails(
    proven: Stream, signer: Signer, other_signer: Signer, forge: Callable[..., Proof], offset: int
) -> None:
    """Changing any part of a proof (record, position, path, root, digest) makes it fail."""
    proof = proofs.prove(proven, offset)
    forged = forge(proof, other_signer)
    assert forged != proof
    result = proofs.check(forged, signer.public)
    assert not result.ok, result.reason


def test_proof_against_another_key_fails(proven: Stream, other_signer: Signer) -> None:
    """An honest proof does not check against an unrelated public key."""
    result = proofs.check(proofs.prove(proven, 3), other_signer.public)
    assert not result.ok
    assert "not signed by this public key" in result.reason


def test_proof_of_a_sealed_record_survives_later_seals(proven: Stream, signer: Signer) -> None:
    """A proof made before more records were sealed still checks, and a new one does too."""
    before = proofs.prove(proven, 1545)
    proven.seal()
    after = proofs.prove(proven, 1545)
    assert before.file.endswith(".log")
    assert after.file.endswith(".seg")
    assert proofs.check(before, signer.public).ok
    assert proofs.check(after, signer.public).ok
