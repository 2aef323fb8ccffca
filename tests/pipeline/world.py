"""A collector on loopback with its CA and store, as several pipeline tests need it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from garrison.core.paths import DataDir
from garrison.core.pki import CertificateAuthority
from garrison.core.secrets import KeyRing
from garrison.core.tls import mtls_server_context
from garrison.logstore.digests import Signer
from garrison.logstore.store import Store
from garrison.pipeline.collector import Collector
from garrison.ssh.ca import SSHAuthority
from garrison.ssh.hosts import HostTrust


def _host_trust(data: DataDir, keyring: KeyRing) -> HostTrust:
    authority = SSHAuthority(data.ssh, keyring)
    authority.init()
    return HostTrust(authority, data.ssh_krl, {"root": ["role-admin"]}, 30)


@dataclass
class Loopback:
    """A data dir's CA and store, and a collector for them on 127.0.0.1 (not yet serving)."""

    data: DataDir
    ca: CertificateAuthority
    store: Store
    collector: Collector


def loopback_collector(
    tmp_path: Path, *, renew_minutes: int | None = None, ssh: bool = False
) -> Loopback:
    """The CA (with the collector's server certificate), a store, and a collector on port 0
    that renews host certificates for `renew_minutes` (not at all when None) and, with `ssh`,
    serves hosts' SSH configuration (``root`` for ``role-admin``)."""
    data = DataDir(tmp_path / "data").ensure()
    keyring = KeyRing.load_or_create(data.kek)
    ca = CertificateAuthority(data.pki, keyring)
    ca.init()
    ctx = mtls_server_context(
        ca.ensure_server("collector", ["127.0.0.1"]), keyring, "collector", ca.cert_path
    )
    store = Store(data.logstore, signer=Signer.load_or_create(tmp_path / "k.pem", b"k"))
    collector = Collector(
        store,
        host="127.0.0.1",
        port=0,
        ssl_context=ctx,
        revocations_path=data.revocations,
        renew=(lambda host, csr: ca.sign_client(csr, host, renew_minutes))
        if renew_minutes
        else None,
        ssh=_host_trust(data, keyring) if ssh else None,
    )
    return Loopback(data, ca, store, collector)
