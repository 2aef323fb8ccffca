"""Copies of the digest public key and of every digest, kept away from the store host.

An attacker who owns the store host can rewrite segments and re-sign digests with a new key;
a copy of the public key and of the latest digest elsewhere (a mounted remote disk, another
host) pins history: `garrison store verify --public-key COPY --anchor COPY` then fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from garrison.logstore import digests
from garrison.logstore.digests import SignedDigest, Signer


class DirectoryExport:
    """Writes ``digest-public.pem`` once and ``<stream>/latest.json`` plus each digest."""

    def __init__(self, directory: Path, signer: Signer) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        key = directory / "digest-public.pem"
        key.write_bytes(digests.public_pem(signer.public))

    def __call__(self, signed: SignedDigest) -> None:
        """Export one new digest (called by the store right after it is written)."""
        target = self.directory / signed.digest.stream
        target.mkdir(exist_ok=True)
        data = msgspec.json.encode(signed)
        for name in (digests.digest_name(signed.digest.seq), "latest.json"):
            tmp = target / f".{name}.tmp"
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target / name)
