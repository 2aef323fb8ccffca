"""Signed, chained digests: what makes history in the store impossible to rewrite unnoticed.

A digest names the segments it covers (file, offsets, SHA-256, Merkle root), optionally a
checkpoint of the active segment, and the segments deleted by retention; it carries the
signature of the previous digest of its stream, and is signed with the store's Ed25519 key.
Only the public key is needed to check a digest, so it can be verified far from the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from garrison.core.files import create_private, fsync_dir


class SegmentRef(msgspec.Struct, frozen=True):
    """One segment as a digest commits to it."""

    file: str
    first: int
    count: int
    min_time_ns: int
    max_time_ns: int
    sha256: str
    merkle_root: str


class Checkpoint(msgspec.Struct, frozen=True):
    """The first `count` records of the active segment, as of the digest."""

    file: str
    first: int
    count: int
    merkle_root: str


class Digest(msgspec.Struct, frozen=True):
    """The signed statement about one stream at one moment.

    `sealed_through` is the last offset of all sealed segments named by this digest and the
    ones before it: the writer's bookmark, never trusted by `verify`, which checks every file.
    """

    version: int
    stream: str
    seq: int
    time: str
    key_id: str
    previous_signature: str
    sealed_through: int
    segments: list[SegmentRef]
    expired: list[SegmentRef]
    checkpoint: Checkpoint | None


class SignedDigest(msgspec.Struct, frozen=True):
    """A digest and its Ed25519 signature (hex) over the digest's canonical JSON."""

    digest: Digest
    signature: str


def key_id(public: Ed25519PublicKey) -> str:
    """Short fingerprint of a public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    """The public key in PEM, for export."""
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public(pem: bytes) -> Ed25519PublicKey:
    """Read an exported public key."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


@dataclass(frozen=True)
class Signer:
    """The store's signing key."""

    private: Ed25519PrivateKey

    @classmethod
    def load_or_create(cls, path: Path, passphrase: bytes) -> Signer:
        """Open the PEM-encrypted key at `path`, creating it (and its .pub) on first use."""
        if not path.exists():
            new = Ed25519PrivateKey.generate()
            pem = new.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(passphrase),
            )
            create_private(path, pem)  # another process may win the race: its key is used
        key = serialization.load_pem_private_key(path.read_bytes(), passphrase)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 key")
        public = path.with_suffix(".pub")
        if not public.exists():
            create_private(public, public_pem(key.public_key()))
        return cls(key)

    @property
    def public(self) -> Ed25519PublicKey:
        """The key that verifies this signer's digests."""
        return self.private.public_key()

    def sign(self, digest: Digest) -> SignedDigest:
        """Sign a digest."""
        return SignedDigest(digest, self.private.sign(msgspec.json.encode(digest)).hex())


def check_signature(signed: SignedDigest, public: Ed25519PublicKey) -> bool:
    """Whether `signed` was signed by the holder of `public`."""
    try:
        public.verify(bytes.fromhex(signed.signature), msgspec.json.encode(signed.digest))
    except (InvalidSignature, ValueError):
        return False
    return True


def now_iso() -> str:
    """Current UTC time for digests."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def digest_name(seq: int) -> str:
    """File name of digest number `seq`."""
    return f"{seq:010d}.json"


def write(directory: Path, signed: SignedDigest) -> Path:
    """Store a signed digest durably (write, fsync, rename, fsync dir)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / digest_name(signed.digest.seq)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        fh.write(msgspec.json.encode(signed))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(directory)
    return path


def read(path: Path) -> SignedDigest:
    """Load one digest file (raises msgspec errors if malformed)."""
    return msgspec.json.decode(path.read_bytes(), type=SignedDigest)


def list_files(directory: Path) -> list[Path]:
    """Digest files of a stream in sequence order."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".json")
