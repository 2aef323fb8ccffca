"""The agent's host identity: a private key that never leaves the host, a short-lived cert."""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from garrison.core.api_client import post_json
from garrison.core.files import replace_private
from garrison.core.tls import client_context

RENEW_AT = 1 / 3  # renew when a third of the certificate's life is left


def new_key_and_csr(host: str) -> tuple[bytes, bytes]:
    """A fresh ECDSA key (PEM) and a CSR for it; the CA ignores the CSR's name."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Identity:
    """Files of the identity in the agent's state directory (0600)."""

    directory: Path

    @property
    def key(self) -> Path:
        """The host's private key."""
        return self.directory / "host.key"

    @property
    def cert(self) -> Path:
        """The host's certificate chain (leaf, then CA)."""
        return self.directory / "host.crt"

    @property
    def ca(self) -> Path:
        """Garrison's CA certificate, to check the collector and server."""
        return self.directory / "ca.crt"

    def exists(self) -> bool:
        """Whether the host has joined."""
        return self.key.is_file() and self.cert.is_file() and self.ca.is_file()

    def host(self) -> str:
        """The host name its certificate carries."""
        leaf = x509.load_pem_x509_certificates(self.cert.read_bytes())[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return str(san.get_values_for_type(x509.DNSName)[0])

    def not_after(self) -> dt.datetime:
        """When the current certificate expires."""
        return x509.load_pem_x509_certificates(self.cert.read_bytes())[0].not_valid_after_utc

    def due_for_renewal(self, now: dt.datetime | None = None) -> bool:
        """True once less than `RENEW_AT` of the certificate's life is left."""
        leaf = x509.load_pem_x509_certificates(self.cert.read_bytes())[0]
        life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        left = leaf.not_valid_after_utc - (now or dt.datetime.now(dt.UTC))
        return left < life * RENEW_AT

    def save(self, key_pem: bytes, chain_pem: bytes, ca_pem: bytes | None = None) -> None:
        """Replace key and certificate (each file atomically; the key first)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if ca_pem is not None:
            replace_private(self.ca, ca_pem)
        replace_private(self.key, key_pem)
        replace_private(self.cert, chain_pem)

    def context(self) -> ssl.SSLContext:
        """An mTLS client context presenting this identity."""
        return client_context(self.cert, self.key, self.ca)


def join(identity: Identity, server_url: str, token: str, server_ca: Path | None) -> str:
    """Spend a join token at the server: make a key, get the first certificate; the host name."""
    key_pem, csr = new_key_and_csr("joining-host")
    body = post_json(
        server_url,
        "/api/v1/agent/join",
        {"csr": csr.decode()},
        token=token,
        server_ca=server_ca,
        what="the join",
    )
    identity.save(key_pem, body["certificate"].encode(), body["ca"].encode())
    return str(body["host"])
