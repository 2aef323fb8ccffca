"""Copies of the digest public key and of every digest, kept away from the store host.

An attacker who owns the store host can rewrite segments and re-sign digests with a new key;
a copy of the public key and of the latest digest elsewhere (a mounted remote disk, another
host) pins history: `garrison store verify --public-key COPY --anchor COPY` then fails.
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
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


class WebhookExport:
    """POSTs every digest as JSON to a URL; unsent digests wait in a spool and go out in order.

    A receiver elsewhere (a SIEM, a ticket system, a tiny service on another host) keeps the
    copy; when it is down, digests queue on disk and are delivered on the next digest.
    """

    def __init__(self, url: str, spool: Path, *, timeout: float = 5.0) -> None:
        if urllib.parse.urlsplit(url).scheme not in {"https", "http"}:
            raise ValueError(f"digest webhook must be an http(s) URL, not {url!r}")
        self.url = url
        self.spool = spool
        self.timeout = timeout
        spool.mkdir(parents=True, exist_ok=True)

    def __call__(self, signed: SignedDigest) -> None:
        """Spool the digest, then deliver everything spooled, oldest first."""
        name = f"{signed.digest.stream}-{digests.digest_name(signed.digest.seq)}"
        tmp = self.spool / f".{name}.tmp"
        tmp.write_bytes(msgspec.json.encode(signed))
        os.replace(tmp, self.spool / name)
        for path in sorted(self.spool.glob("*.json"), key=lambda p: p.stat().st_mtime_ns):
            request = urllib.request.Request(  # noqa: S310  # scheme checked in __init__
                self.url,
                data=path.read_bytes(),
                headers={"Content-Type": "application/json", "User-Agent": "garrison-digest"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310  # nosec B310
                if not 200 <= response.status < 300:
                    raise OSError(f"digest webhook answered {response.status}")
            path.unlink()
