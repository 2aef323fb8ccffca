"""Garrison's internal certificate authority: issues the certificates roles use for TLS.

The CA key (ECDSA P-256) and every issued private key are PEM-encrypted under a passphrase
derived from the data dir's key-encryption key. Server certificates are short-lived (30 days)
and renewed automatically when a third of their life is left.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from garrison.core.errors import CryptoError, NotFoundError, ValidationError
from garrison.core.files import replace_private
from garrison.core.secrets import KeyRing

CA_DAYS = 3650
SERVER_DAYS = 30
#: Bounds of a host's client certificate life, in minutes (short-lived: renewed, never revoked
#: for long).
CLIENT_MINUTES_MIN, CLIENT_MINUTES_MAX = 5, 1440
#: A host identity: a DNS name (letters, digits, '-' and '.'), at most 253 characters.
HOST_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True)
class Issued:
    """Paths of a certificate (leaf followed by the CA) and its encrypted key."""

    cert: Path
    key: Path
    not_after: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _encrypted_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


class CertificateAuthority:
    """The CA stored in ``<data dir>/pki``."""

    def __init__(self, pki_dir: Path, keyring: KeyRing) -> None:
        self.dir = pki_dir
        self.keyring = keyring

    @property
    def cert_path(self) -> Path:
        """The CA certificate (public; what clients trust)."""
        return self.dir / "ca.crt"

    @property
    def key_path(self) -> Path:
        """The CA private key, encrypted."""
        return self.dir / "ca.key"

    def exists(self) -> bool:
        """Whether the CA has been created."""
        return self.cert_path.is_file() and self.key_path.is_file()

    def init(self, common_name: str = "Garrison internal CA") -> x509.Certificate:
        """Create the CA; refuses to overwrite an existing one."""
        if self.exists():
            return self.certificate()
        self.dir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Garrison"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        replace_private(self.key_path, _encrypted_pem(key, self.keyring.passphrase("ca")))
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def certificate(self) -> x509.Certificate:
        """The CA certificate."""
        try:
            return x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except FileNotFoundError:
            raise NotFoundError(
                f"no CA in {self.dir}", hint="run `garrison pki init` first"
            ) from None

    def _private_key(self) -> ec.EllipticCurvePrivateKey:
        try:
            key = serialization.load_pem_private_key(
                self.key_path.read_bytes(), self.keyring.passphrase("ca")
            )
        except FileNotFoundError:
            raise NotFoundError(
                f"no CA key in {self.dir}", hint="run `garrison pki init`"
            ) from None
        except ValueError:
            raise CryptoError(
                "the CA key does not decrypt with this data dir's key-encryption key"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CryptoError("the CA key is not an ECDSA key")
        return key

    def issue_server(self, name: str, hosts: list[str], days: int = SERVER_DAYS) -> Issued:
        """Issue a TLS server certificate for `hosts` (DNS names or IP addresses)."""
        ca_cert, ca_key = self.certificate(), self._private_key()
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for host in dict.fromkeys(hosts):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        now = _now()
        not_after = now + dt.timedelta(days=days)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        issued = Issued(
            self.dir / f"{name}.crt", self.dir / f"{name}.key", cert.not_valid_after_utc
        )
        replace_private(issued.key, _encrypted_pem(key, self.keyring.passphrase(name)))
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
            serialization.Encoding.PEM
        )
        replace_private(issued.cert, chain)
        return issued

    def sign_client(self, csr_pem: bytes, host: str, minutes: int) -> bytes:
        """Issue a short-lived TLS client certificate for `host` from its CSR.

        The CSR's signature must verify (the host holds the key); its subject and extensions are
        ignored: the certificate names `host` only (CN and SAN DNS), allows client
        authentication only and is not a CA. Returns the PEM chain, leaf then CA.
        """
        if not CLIENT_MINUTES_MIN <= minutes <= CLIENT_MINUTES_MAX:
            raise ValidationError(
                f"a client certificate lives {CLIENT_MINUTES_MIN} to {CLIENT_MINUTES_MAX} "
                f"minutes, not {minutes}"
            )
        if not HOST_RE.match(host):
            raise ValidationError(f"invalid host name {host!r}: use a DNS name")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise ValidationError("the certificate request is not a PEM CSR") from None
        if not csr.is_signature_valid:
            raise ValidationError("the certificate request's signature does not verify")
        public = csr.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            if public.key_size < 2048:
                raise ValidationError("an RSA client key must have at least 2048 bits")
        elif not isinstance(public, ec.EllipticCurvePublicKey):
            raise ValidationError("the client key must be ECDSA or RSA")
        ca_cert, ca_key = self.certificate(), self._private_key()
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(minutes=minutes))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    content_commitment=False,
                    key_encipherment=isinstance(public, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
            serialization.Encoding.PEM
        )

    def current(self, name: str) -> Issued | None:
        """The certificate issued under `name`, if any."""
        cert_path, key_path = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        if not (cert_path.is_file() and key_path.is_file()):
            return None
        leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return Issued(cert_path, key_path, leaf.not_valid_after_utc)

    def ensure_server(self, name: str, hosts: list[str]) -> Issued:
        """Return a valid certificate for `hosts`, issuing a new one when due or missing."""
        issued = self.current(name)
        if issued is None or needs_renewal(issued) or not _covers(issued, hosts):
            issued = self.issue_server(name, hosts)
        return issued


def needs_renewal(issued: Issued, now: dt.datetime | None = None) -> bool:
    """True when less than a third of a server certificate's life is left."""
    return (issued.not_after - (now or _now())) < dt.timedelta(days=SERVER_DAYS / 3)


def _covers(issued: Issued, hosts: list[str]) -> bool:
    leaf = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    names |= set(san.get_values_for_type(x509.DNSName))
    return set(hosts) <= names
