"""TLS for every Garrison listener: TLS 1.2 and 1.3 only, with Mozilla's intermediate ciphers."""

from __future__ import annotations

import ssl
from pathlib import Path

from garrison.core.pki import CertificateAuthority, Issued
from garrison.core.secrets import KeyRing

#: Mozilla's "intermediate" TLS 1.2 cipher list (server side, guideline 5.7).
INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    ]
)


def server_context(issued: Issued, keyring: KeyRing, name: str) -> ssl.SSLContext:
    """A server-side context for the certificate issued under `name`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(INTERMEDIATE_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    load_certificate(ctx, issued, keyring, name)
    return ctx


def renew_if_due(
    ctx: ssl.SSLContext, ca: CertificateAuthority, keyring: KeyRing, name: str, hosts: list[str]
) -> Issued | None:
    """Re-issue the certificate `name` when due and load it into the live context."""
    current = ca.current(name)
    issued = ca.ensure_server(name, hosts)
    if current is not None and issued.not_after == current.not_after:
        return None
    load_certificate(ctx, issued, keyring, name)
    return issued


def load_certificate(ctx: ssl.SSLContext, issued: Issued, keyring: KeyRing, name: str) -> None:
    """(Re)load a certificate into a live context: new handshakes use it at once."""
    ctx.load_cert_chain(issued.cert, issued.key, password=keyring.passphrase(name))


def mtls_server_context(
    issued: Issued, keyring: KeyRing, name: str, ca_path: Path
) -> ssl.SSLContext:
    """A server context that also requires a client certificate issued by the CA at `ca_path`."""
    ctx = server_context(issued, keyring, name)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=ca_path)
    return ctx


def client_context(
    cert_path: Path, key_path: Path, ca_path: Path, *, password: bytes | None = None
) -> ssl.SSLContext:
    """A client context presenting a certificate and trusting only the CA at `ca_path`.

    TLS 1.2 or 1.3; the server's certificate must chain to that CA and name the host dialled.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(INTERMEDIATE_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.load_verify_locations(cafile=ca_path)
    ctx.load_cert_chain(cert_path, key_path, password=password)
    return ctx
