"""TLS for every Garrison listener: TLS 1.2 and 1.3 only, with Mozilla's intermediate ciphers."""

from __future__ import annotations

import ssl

from garrison.core.pki import Issued
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


def load_certificate(ctx: ssl.SSLContext, issued: Issued, keyring: KeyRing, name: str) -> None:
    """(Re)load a certificate into a live context: new handshakes use it at once."""
    ctx.load_cert_chain(issued.cert, issued.key, password=keyring.passphrase(name))
