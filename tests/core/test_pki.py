"""The internal CA: encrypted keys, certificates that chain and cover their names, renewal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from garrison.core.errors import CryptoError
from garrison.core.pki import CertificateAuthority, needs_renewal
from garrison.core.secrets import KeyRing


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    """A fresh CA in a temp dir."""
    authority = CertificateAuthority(tmp_path / "pki", KeyRing.load_or_create(tmp_path / "kek"))
    authority.init()
    return authority


def test_keys_are_encrypted_at_rest(ca: CertificateAuthority) -> None:
    """Neither the CA key nor an issued key can be read without the KEK-derived passphrase."""
    issued = ca.issue_server("server", ["127.0.0.1", "localhost"])
    for path in (ca.key_path, issued.key):
        pem = path.read_bytes()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(pem, None)


def test_server_certificate_chains_and_covers_names(ca: CertificateAuthority) -> None:
    """The leaf is signed by the CA, is not a CA, and names its IPs and hosts."""
    issued = ca.issue_server("server", ["127.0.0.1", "garrison.example", "::1"])
    leaf, root = x509.load_pem_x509_certificates(issued.cert.read_bytes())
    leaf.verify_directly_issued_by(ca.certificate())
    assert root == ca.certificate()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert san.get_values_for_type(x509.DNSName) == ["garrison.example"]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_ensure_server_reuses_then_renews(ca: CertificateAuthority) -> None:
    """A valid certificate is reused; new names or a near expiry issue a new one."""
    first = ca.ensure_server("server", ["127.0.0.1"])
    assert ca.ensure_server("server", ["127.0.0.1"]).not_after == first.not_after
    wider = ca.ensure_server("server", ["127.0.0.1", "localhost"])
    leaf = x509.load_pem_x509_certificates(wider.cert.read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert not needs_renewal(first)
    assert needs_renewal(first, now=first.not_after - dt.timedelta(days=5))


def test_wrong_kek_cannot_use_the_ca(ca: CertificateAuthority, tmp_path: Path) -> None:
    """A CA copied without its KEK cannot sign."""
    thief = CertificateAuthority(ca.dir, KeyRing.load_or_create(tmp_path / "other-kek"))
    with pytest.raises(CryptoError):
        thief.issue_server("server", ["127.0.0.1"])
