"""TLS of a real `garrison server`: versions, ciphers, certificate chain, keys at rest, bad config.

Each refused handshake is paired with a control: the very same client context first completes
a handshake with a permissive local TLS server, so a refusal proves the server said no, not
that this machine's OpenSSL could not even offer the old protocol or cipher.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cli import garrison_env
from tests.e2e.conftest import HOST, Garrison

LEGACY = "DEFAULT:@SECLEVEL=0"
TIMEOUT = 10.0
VERSION_NAMES = {
    ssl.TLSVersion.TLSv1: "TLSv1",
    ssl.TLSVersion.TLSv1_1: "TLSv1.1",
    ssl.TLSVersion.TLSv1_2: "TLSv1.2",
}


@dataclass(frozen=True)
class Permissive:
    """A local TLS server that accepts TLS 1.0 and up with every cipher, for controls."""

    port: int
    ca_path: Path


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A throw-away ECDSA P-256 certificate for 127.0.0.1 (like Garrison's) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "control.crt", directory / "control.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _legacy_versions(ctx: ssl.SSLContext, version: ssl.TLSVersion) -> None:
    """Pin a context to one version; TLS 1.0/1.1 are deprecated in Python, on purpose here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version


def _serve_permissive(listener: socket.socket, ctx: ssl.SSLContext, done: threading.Event) -> None:
    listener.settimeout(0.2)
    while not done.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(TIMEOUT)
            with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # hold the connection until the client closes it


@pytest.fixture(scope="module")
def permissive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Permissive]:
    """A permissive TLS server on a free port, running in a thread."""
    cert_path, key_path = _self_signed(tmp_path_factory.mktemp("control"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _legacy_versions(ctx, ssl.TLSVersion.TLSv1)
    ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.load_cert_chain(cert_path, key_path)
    done = threading.Event()
    with socket.create_server((HOST, 0)) as listener:
        thread = threading.Thread(target=_serve_permissive, args=(listener, ctx, done), daemon=True)
        thread.start()
        try:
            yield Permissive(listener.getsockname()[1], cert_path)
        finally:
            done.set()
            thread.join(timeout=TIMEOUT)


def client(
    cafile: Path, version: ssl.TLSVersion | None = None, ciphers: str | None = None
) -> ssl.SSLContext:
    """A verifying client context trusting `cafile`, optionally pinned to a version/ciphers."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    if version is not None:
        _legacy_versions(ctx, version)
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def handshake(ctx: ssl.SSLContext, port: int) -> tuple[str, str, x509.Certificate]:
    """Connect to 127.0.0.1:`port`; the negotiated version, cipher and peer certificate."""
    with (
        socket.create_connection((HOST, port), timeout=TIMEOUT) as sock,
        ctx.wrap_socket(sock, server_hostname=HOST) as tls,
    ):
        version, (cipher, _, _) = tls.version(), tls.cipher() or ("", "", 0)
        der = tls.getpeercert(binary_form=True)
    assert version is not None
    assert der is not None
    return version, cipher, x509.load_der_x509_certificate(der)


def assert_refused(
    garrison: Garrison,
    permissive: Permissive,
    version: ssl.TLSVersion,
    ciphers: str,
    cipher: str | None = None,
) -> None:
    """The client can speak `version`/`ciphers` (control passes) but Garrison refuses it."""
    negotiated, suite, _ = handshake(client(permissive.ca_path, version, ciphers), permissive.port)
    assert negotiated == VERSION_NAMES[version]
    assert cipher is None or suite == cipher
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(client(garrison.ca_path, version, ciphers), garrison.port)


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["tls1.0", "tls1.1"]
)
def test_old_tls_versions_are_refused(
    garrison_server: Garrison, permissive: Permissive, version: ssl.TLSVersion
) -> None:
    """A client limited to TLS 1.0 or 1.1 cannot connect, though it can elsewhere."""
    assert_refused(garrison_server, permissive, version, LEGACY)


def test_tls12_with_intermediate_cipher_connects(garrison_server: Garrison) -> None:
    """TLS 1.2 offering only ECDHE-ECDSA-AES128-GCM-SHA256 connects with exactly that."""
    ctx = client(garrison_server.ca_path, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256")
    version, cipher, _ = handshake(ctx, garrison_server.port)
    assert (version, cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")


def test_tls13_connects(garrison_server: Garrison) -> None:
    """A TLS 1.3-only client connects with a TLS 1.3 AEAD suite."""
    version, cipher, _ = handshake(
        client(garrison_server.ca_path, ssl.TLSVersion.TLSv1_3), garrison_server.port
    )
    assert version == "TLSv1.3"
    assert cipher in {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    }


@pytest.mark.parametrize(
    "cipher",
    ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256"],
)
def test_tls12_cbc_ciphers_are_refused(
    garrison_server: Garrison, permissive: Permissive, cipher: str
) -> None:
    """TLS 1.2 offering only a CBC cipher is refused, though it works elsewhere."""
    assert_refused(
        garrison_server, permissive, ssl.TLSVersion.TLSv1_2, f"{cipher}:@SECLEVEL=0", cipher
    )


def test_certificate_chains_to_internal_ca_and_covers_loopback(garrison_server: Garrison) -> None:
    """The served leaf is signed by DATA_DIR/pki/ca.crt, verifies for 127.0.0.1 and is no CA."""
    _, _, leaf = handshake(client(garrison_server.ca_path), garrison_server.port)
    ca = x509.load_pem_x509_certificate(garrison_server.ca_path.read_bytes())
    leaf.verify_directly_issued_by(ca)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address(HOST) in san.get_values_for_type(x509.IPAddress)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(ssl.SSLCertVerificationError):  # and nothing but our CA vouches for it
        handshake(ssl.create_default_context(), garrison_server.port)


@pytest.mark.parametrize("name", ["ca.key", "server.key"])
def test_private_keys_are_encrypted_at_rest(garrison_server: Garrison, name: str) -> None:
    """The CA and server keys on disk are encrypted PKCS#8 PEM that does not open without a key."""
    pem = (garrison_server.data_dir / "pki" / name).read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert b"-----BEGIN PRIVATE KEY-----" not in pem
    with pytest.raises(TypeError, match="encrypted"):
        serialization.load_pem_private_key(pem, password=None)


def test_invalid_port_setting_exits_2_naming_port(tmp_path: Path) -> None:
    """`GARRISON_PORT=abc garrison server` exits with code 2 and says the port is wrong."""
    result = subprocess.run(
        [sys.executable, "-m", "garrison", "server", "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        env=garrison_env(GARRISON_PORT="abc"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result
    assert "port" in result.stderr
    assert "GARRISON_PORT" in result.stderr
