"""The collector: mTLS identity, durable all-or-nothing batches, duplicates, revocation, limits."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import garrison
from garrison.core.errors import PermissionDeniedError, ValidationError
from garrison.core.pki import CertificateAuthority
from garrison.core.secrets import KeyRing
from garrison.core.tls import client_context, mtls_server_context
from garrison.logstore import verify
from garrison.logstore.digests import Signer
from garrison.logstore.store import Store
from garrison.pipeline import collector as collector_mod
from garrison.pipeline.activity import HostActivity
from garrison.pipeline.collector import MAX_BODY, Collector
from garrison.pipeline.ship import Shipper


@dataclass
class Env:
    """A CA, a store and the files a collector needs, all under one temp dir."""

    tmp: Path
    ca: CertificateAuthority
    keyring: KeyRing
    signer: Signer
    revocations: Path

    @property
    def store_root(self) -> Path:
        return self.tmp / "logstore"

    def open_store(self) -> Store:
        return Store(self.store_root, signer=self.signer)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    keyring = KeyRing.load_or_create(tmp_path / "kek")
    ca = CertificateAuthority(tmp_path / "pki", keyring)
    ca.init()
    signer = Signer.load_or_create(tmp_path / "digest.pem", b"digest-pass")
    return Env(tmp_path, ca, keyring, signer, tmp_path / "pki" / "revoked-hosts.json")


StartCollector = Callable[..., Collector]
#: How a refused handshake shows on the client: an alert, or (TLS 1.3, where the client finishes
#: first) a reset or EOF on the first read.
REFUSED = (ssl.SSLError, ConnectionError)


@pytest.fixture
def start(env: Env) -> Iterator[StartCollector]:
    """Start collectors on 127.0.0.1 (free port) in threads; all stopped at teardown."""
    running: list[tuple[Collector, threading.Thread, Store]] = []

    def _start(store: Store | None = None, **kwargs: Any) -> Collector:
        store = store or env.open_store()
        issued = env.ca.ensure_server("collector", ["127.0.0.1", "localhost"])
        ctx = mtls_server_context(issued, env.keyring, "collector", env.ca.cert_path)
        kwargs.setdefault("max_inflight", 4)
        c = Collector(
            store,
            host="127.0.0.1",
            port=0,
            ssl_context=ctx,
            revocations_path=env.revocations,
            **kwargs,
        )
        thread = threading.Thread(target=c.serve_forever, daemon=True)
        thread.start()
        running.append((c, thread, store))
        return c

    yield _start
    for c, thread, store in running:
        c.shutdown()
        thread.join(5)
        store.close()


@dataclass
class Client:
    """A host's client certificate and the context that presents it."""

    host: str
    cert: Path
    key: Path
    ca: Path

    def context(self) -> ssl.SSLContext:
        return client_context(self.cert, self.key, self.ca)

    @property
    def serial(self) -> int:
        return x509.load_pem_x509_certificates(self.cert.read_bytes())[0].serial_number


def write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


def csr_for(key: ec.EllipticCurvePrivateKey, cn: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def enroll(env: Env, host: str, minutes: int = 60) -> Client:
    """Generate a key and CSR as a host would, and have the CA sign it."""
    key_path, cert_path = env.tmp / f"{host}.key", env.tmp / f"{host}.crt"
    key = write_key(key_path)
    cert_path.write_bytes(env.ca.sign_client(csr_for(key, "ignored-name"), host, minutes))
    return Client(host, cert_path, key_path, env.ca.cert_path)


def request(
    c: Collector,
    ctx: ssl.SSLContext,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    host, port = c.address
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), json.loads(data) if data else {}
    finally:
        conn.close()


def post(
    c: Collector,
    client: Client,
    batch_id: str,
    events: list[dict[str, Any]],
    stream: str = "app",
    **kwargs: Any,
) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"batch_id": batch_id, "stream": stream, "events": events}).encode()
    status, _, reply = request(c, client.context(), "POST", "/v1/batches", body, **kwargs)
    return status, reply


def stored(env: Env, stream: str = "app") -> list[dict[str, Any]]:
    store = Store(env.store_root)
    try:
        return [r.event() for r in store.stream(stream).read(0, 100_000)]
    finally:
        store.close()


# --- sign_client ------------------------------------------------------------------------------


def test_sign_client_issues_a_short_lived_client_only_certificate(env: Env) -> None:
    """CN and SAN name the host, clientAuth only, not a CA, 1 minute back-dated."""
    client = enroll(env, "web-1.example", minutes=30)
    leaf, root = x509.load_pem_x509_certificates(client.cert.read_bytes())
    assert root == env.ca.certificate()
    leaf.verify_directly_issued_by(root)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "web-1.example"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web-1.example"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert life == dt.timedelta(minutes=31)


@pytest.mark.parametrize("minutes", [0, 4, 1441])
def test_sign_client_bounds_the_lifetime(env: Env, minutes: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValidationError):
        env.ca.sign_client(csr_for(key, "h"), "h.example", minutes)


def test_sign_client_refuses_a_forged_csr_and_bad_names(env: Env) -> None:
    """A CSR whose signature does not verify, garbage, or a non-DNS host name is refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    good = csr_for(key, "h")
    der = bytearray(x509.load_pem_x509_csr(good).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(ValidationError, match="signature"):
        env.ca.sign_client(forged, "h.example", 60)
    with pytest.raises(ValidationError):
        env.ca.sign_client(b"not a csr", "h.example", 60)
    for bad in ["", "a/b", "-x.example", "a b"]:
        with pytest.raises(ValidationError):
            env.ca.sign_client(good, bad, 60)


# --- batches ----------------------------------------------------------------------------------


def test_batch_is_stored_with_host_and_acknowledged(env: Env, start: StartCollector) -> None:
    c = start()
    client = enroll(env, "web-1")
    events = [{"msg": "a", "time": "2026-01-01T00:00:00Z"}, {"msg": "b", "host": "web-1"}]
    status, reply = post(c, client, "b-1", events)
    assert status == 200
    assert reply == {"batch_id": "b-1", "stored": 2, "first_offset": 0}
    assert stored(env) == [
        {"msg": "a", "time": "2026-01-01T00:00:00Z", "host": "web-1", "_batch": "web-1/b-1"},
        {"msg": "b", "host": "web-1", "_batch": "web-1/b-1"},
    ]
    status, reply = post(c, client, "b-2", [{"msg": "c"}])
    assert (status, reply["first_offset"]) == (200, 2)


def test_health_needs_an_authenticated_host(env: Env, start: StartCollector) -> None:
    c = start()
    status, _, reply = request(c, enroll(env, "web-1").context(), "GET", "/v1/health")
    assert status == 200
    assert reply["host"] == "web-1"
    status, _, reply = request(c, enroll(env, "web-1").context(), "GET", "/nope")
    assert status == 404
    assert reply["error"]["code"] == "not_found"


def test_repeated_batch_id_is_a_duplicate_stored_once(env: Env, start: StartCollector) -> None:
    c = start()
    client, other = enroll(env, "web-1"), enroll(env, "web-2")
    assert post(c, client, "b-1", [{"n": 1}])[0] == 200
    status, reply = post(c, client, "b-1", [{"n": 1}])
    assert status == 200
    assert reply["duplicate"] is True
    assert reply["stored"] == 0
    # Batch ids are per host: another host may use the same id.
    status, reply = post(c, other, "b-1", [{"n": 2}])
    assert status == 200
    assert "duplicate" not in reply
    assert [e["n"] for e in stored(env)] == [1, 2]


@pytest.mark.parametrize("seal", [False, True])
def test_duplicate_is_recognised_after_a_restart(
    env: Env, start: StartCollector, seal: bool
) -> None:
    """A new collector on the same store (as after SIGKILL right after the append) knows the id.

    Covers both places the start-up scan reads: the active log and the newest sealed segment.
    """
    store = env.open_store()
    first = start(store)
    client = enroll(env, "web-1")
    assert post(first, client, "b-1", [{"n": 1}])[0] == 200
    if seal:
        store.stream("app").seal()
        assert store.stream("app").sealed_segments()
    # No clean shutdown of the first collector's state: a fresh Store and Collector read disk.
    again = start(Store(env.store_root, signer=env.signer))
    status, reply = post(again, client, "b-1", [{"n": 1}])
    assert status == 200
    assert reply["duplicate"] is True
    assert [e["n"] for e in stored(env)] == [1]


def test_event_claiming_another_host_refuses_the_batch(env: Env, start: StartCollector) -> None:
    c = start()
    client = enroll(env, "web-1")
    status, reply = post(c, client, "b-1", [{"n": 1}, {"n": 2, "host": "db-1"}])
    assert status == 403
    assert reply["error"]["code"] == "permission_denied"
    assert stored(env) == []
    # Not remembered as stored: the corrected batch with the same id goes in.
    assert post(c, client, "b-1", [{"n": 1}])[1]["stored"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"batch_id": "", "stream": "app", "events": [{}]},
        {"batch_id": "a/b", "stream": "app", "events": [{}]},
        {"batch_id": "x" * 101, "stream": "app", "events": [{}]},
        {"batch_id": "b", "stream": "audit", "events": [{}]},
        {"batch_id": "b", "stream": "app", "events": []},
        {"batch_id": "b", "stream": "app", "events": [1]},
        {"batch_id": "b", "stream": "app"},
        {"batch_id": "b", "stream": "app", "events": [{}], "extra": 1},
    ],
)
def test_malformed_batches_are_refused(
    env: Env, start: StartCollector, body: dict[str, Any]
) -> None:
    c = start()
    ctx = enroll(env, "web-1").context()
    status, _, reply = request(c, ctx, "POST", "/v1/batches", json.dumps(body).encode())
    assert status == 400
    assert reply["error"]["code"] == "validation_error"
    assert stored(env) == []


def test_zstd_body(env: Env, start: StartCollector) -> None:
    c = start()
    client = enroll(env, "web-1")
    raw = json.dumps({"batch_id": "z-1", "stream": "web", "events": [{"n": i} for i in range(50)]})
    body = zstandard.ZstdCompressor().compress(raw.encode())
    status, _, reply = request(
        c, client.context(), "POST", "/v1/batches", body, {"Content-Encoding": "zstd"}
    )
    assert status == 200
    assert reply["stored"] == 50
    assert [e["n"] for e in stored(env, "web")] == list(range(50))
    status, _, reply = request(
        c, client.context(), "POST", "/v1/batches", b"not zstd", {"Content-Encoding": "zstd"}
    )
    assert status == 400


def test_oversized_bodies_get_413(env: Env, start: StartCollector) -> None:
    """Too large as sent, or too large once decompressed (a zstd bomb)."""
    c = start()
    client = enroll(env, "web-1")
    status, _, reply = request(c, client.context(), "POST", "/v1/batches", b"x" * (MAX_BODY + 1))
    assert status == 413
    assert reply["error"]["code"] == "too_large"
    bomb = zstandard.ZstdCompressor().compress(b" " * (MAX_BODY + 10))
    assert len(bomb) < 10_000
    status, _, _ = request(
        c, client.context(), "POST", "/v1/batches", bomb, {"Content-Encoding": "zstd"}
    )
    assert status == 413
    assert stored(env) == []


def test_saturation_answers_503_with_retry_after(
    env: Env, start: StartCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With max_inflight=1 and one batch stuck in the store, the next request is told to retry."""
    store = env.open_store()
    c = start(store, max_inflight=1)
    client = enroll(env, "web-1")
    entered, release = threading.Event(), threading.Event()
    real_append = store.append

    def slow_append(stream: str, events: Any) -> list[int]:
        entered.set()
        assert release.wait(10)
        return real_append(stream, events)

    monkeypatch.setattr(store, "append", slow_append)
    results: list[tuple[int, dict[str, Any]]] = []
    worker = threading.Thread(target=lambda: results.append(post(c, client, "b-1", [{"n": 1}])))
    worker.start()
    try:
        assert entered.wait(10)
        body = json.dumps({"batch_id": "b-2", "stream": "app", "events": [{"n": 2}]}).encode()
        status, headers, reply = request(c, client.context(), "POST", "/v1/batches", body)
        assert status == 503
        assert headers["Retry-After"] == "1"
        assert reply["error"]["code"] == "busy"
    finally:
        release.set()
        worker.join(10)
    assert results == [(200, {"batch_id": "b-1", "stored": 1, "first_offset": 0})]
    assert post(c, client, "b-2", [{"n": 2}])[0] == 200  # free again


def test_concurrent_same_batch_is_stored_once(env: Env, start: StartCollector) -> None:
    c = start(max_inflight=8)
    client = enroll(env, "web-1")
    results: list[tuple[int, dict[str, Any]]] = []
    threads = [
        threading.Thread(target=lambda: results.append(post(c, client, "same", [{"n": 1}])))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 6
    assert {status for status, _ in results} <= {200, 503}
    assert len(stored(env)) == 1


# --- identity ---------------------------------------------------------------------------------


def test_client_without_certificate_cannot_connect(env: Env, start: StartCollector) -> None:
    c = start()
    ctx = ssl.create_default_context(cafile=str(env.ca.cert_path))
    with pytest.raises(REFUSED):
        request(c, ctx, "GET", "/v1/health")


def test_certificate_from_another_ca_is_refused(env: Env, start: StartCollector) -> None:
    c = start()
    other = CertificateAuthority(env.tmp / "other-pki", env.keyring)
    other.init()
    key_path, cert_path = env.tmp / "rogue.key", env.tmp / "rogue.crt"
    cert_path.write_bytes(other.sign_client(csr_for(write_key(key_path), "web-1"), "web-1", 60))
    ctx = client_context(cert_path, key_path, env.ca.cert_path)
    with pytest.raises(REFUSED):
        request(c, ctx, "GET", "/v1/health")


def test_expired_client_certificate_is_refused(env: Env, start: StartCollector) -> None:
    c = start()
    key_path, cert_path = env.tmp / "old.key", env.tmp / "old.crt"
    key = write_key(key_path)
    now = dt.datetime.now(dt.UTC)
    ca_key = env.ca._private_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web-1")]))
        .issuer_name(env.ca.certificate().subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=2))
        .not_valid_after(now - dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("web-1")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + env.ca.certificate().public_bytes(serialization.Encoding.PEM)
    )
    ctx = client_context(cert_path, key_path, env.ca.cert_path)
    with pytest.raises(REFUSED):
        request(c, ctx, "GET", "/v1/health")
    # The same key with a current certificate works.
    fresh = enroll(env, "web-1")
    assert request(c, fresh.context(), "GET", "/v1/health")[0] == 200


def test_server_certificate_is_not_a_client_certificate(env: Env, start: StartCollector) -> None:
    """A certificate of the same CA that lacks clientAuth (the collector's own) is refused."""
    c = start()
    issued = env.ca.issue_server("other-server", ["web-1"])
    ctx = client_context(
        issued.cert, issued.key, env.ca.cert_path, password=env.keyring.passphrase("other-server")
    )
    with pytest.raises(REFUSED):
        request(c, ctx, "GET", "/v1/health")


def write_revocations(env: Env, **data: list[str]) -> None:
    tmp = env.revocations.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, env.revocations)


def test_revoked_host_or_serial_gets_403(env: Env, start: StartCollector) -> None:
    c = start()
    web1, web2 = enroll(env, "web-1"), enroll(env, "web-2")
    assert post(c, web1, "b-1", [{"n": 1}])[0] == 200
    write_revocations(env, hosts=["web-1"])
    status, reply = post(c, web1, "b-2", [{"n": 2}])
    assert status == 403
    assert "revoked" in reply["error"]["message"]
    assert request(c, web1.context(), "GET", "/v1/health")[0] == 403
    assert post(c, web2, "b-3", [{"n": 3}])[0] == 200
    write_revocations(env, hosts=[], serials=[format(web2.serial, "x")])
    assert post(c, web2, "b-4", [{"n": 4}])[0] == 403
    assert post(c, web1, "b-5", [{"n": 5}])[0] == 200  # un-revoked on reload
    assert [e["n"] for e in stored(env)] == [1, 3, 5]


def test_unreadable_revocation_list_fails_closed(env: Env, start: StartCollector) -> None:
    c = start()
    env.revocations.write_text("{not json")
    status, _, reply = request(c, enroll(env, "web-1").context(), "GET", "/v1/health")
    assert status == 503
    assert reply["error"]["code"] == "store_unavailable"


# --- integrity --------------------------------------------------------------------------------


def test_stored_events_verify_after_checkpoint(env: Env, start: StartCollector) -> None:
    store = env.open_store()
    c = start(store)
    clients = [enroll(env, "web-1"), enroll(env, "db-1")]
    for i in range(5):
        for client in clients:
            assert post(c, client, f"b-{i}", [{"i": i, "j": j} for j in range(3)])[0] == 200
    assert store.stream("app").checkpoint() is not None
    events = stored(env)
    assert len(events) == 30
    assert {e["host"] for e in events} == {"web-1", "db-1"}
    assert all(e["_batch"] == f"{e['host']}/b-{e['i']}" for e in events)
    report = verify.verify(env.store_root, env.signer.public, deep=True)
    assert report.intact, [p.line() for p in report.problems]


def test_recent_batches_forget_the_oldest() -> None:
    recent = collector_mod.RecentBatches(limit=2)
    for key in ["a", "b", "c"]:
        assert recent.claim(key)
        recent.release(key, stored=True)
    assert "a" not in recent
    assert "b" in recent
    assert not recent.claim("c")


def test_host_renews_its_certificate_before_expiry(env: Env, start: StartCollector) -> None:
    """An authenticated host gets a fresh certificate for its own name; a revoked one does not."""
    c = start(renew=lambda host, csr: env.ca.sign_client(csr, host, 30))
    client = enroll(env, "web-1", minutes=10)
    key = serialization.load_pem_private_key(client.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    body = json.dumps({"csr": csr_for(key, "evil-other-host").decode()}).encode()
    status, _, reply = request(c, client.context(), "POST", "/v1/renew", body)
    assert status == 200, reply
    leaf = x509.load_pem_x509_certificates(reply["certificate"].encode())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["web-1"]
    old = x509.load_pem_x509_certificates(client.cert.read_bytes())[0]
    assert leaf.not_valid_after_utc > old.not_valid_after_utc
    env.revocations.write_text(json.dumps({"hosts": ["web-1"], "serials": []}))
    status, _, _ = request(c, client.context(), "POST", "/v1/renew", body)
    assert status == 403
    audit = [(e["action"], e["outcome"], e["actor"], e["status"]) for e in stored(env, "audit")]
    assert audit == [
        ("collector.renew.post", "success", {"type": "host", "name": "web-1"}, 200),
        ("collector.renew.post", "denied", {"type": "host", "name": "web-1"}, 403),
    ]
    refusal = stored(env, "audit")[1]
    assert "web-1 is revoked" in refusal["request_parameters"]["reason"]
    assert refusal["source_ip"] == "127.0.0.1"


# --- kept-alive connections -------------------------------------------------------------------


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the TCP+TLS connections HTTPSConnection opens."""
    opened: list[int] = []
    original = http.client.HTTPSConnection.connect

    def counting(self: http.client.HTTPSConnection) -> None:
        opened.append(1)
        original(self)

    monkeypatch.setattr(http.client.HTTPSConnection, "connect", counting)
    return opened


def _shipper(c: Collector, client: Client) -> Shipper:
    host, port = c.address
    return Shipper(f"https://{host}:{port}", client.context())


def test_shipper_keeps_one_connection_and_reconnects_after_an_idle_close(
    env: Env, start: StartCollector, connects: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many requests, one handshake; a connection the collector closed is replaced once."""
    monkeypatch.setattr(collector_mod._Handler, "timeout", 1.0)  # idle connections close at 1 s
    c = start()
    free = c.connections._value  # type: ignore[attr-defined]  # every slot, before any connection
    shipper = _shipper(c, enroll(env, "web-1"))
    for n in range(5):
        shipper.send(shipper.encode_batch(f"b-{n}", "app", [{"n": n}]))
    assert len(connects) == 1
    deadline = time.monotonic() + 10
    while c.connections._value != free and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.05)
    assert shipper.request("GET", "/v1/health")["host"] == "web-1"
    assert len(connects) == 2
    shipper.close()
    assert [e["n"] for e in stored(env)] == list(range(5))


def test_certificate_expiry_is_checked_on_every_request_of_a_kept_connection(
    env: Env, start: StartCollector
) -> None:
    """The handshake saw a valid certificate; a request after its expiry is still refused."""
    c = start()
    der = x509.load_pem_x509_certificates(enroll(env, "web-1", minutes=5).cert.read_bytes())[0]
    peer = collector_mod.peer_from_der(der.public_bytes(serialization.Encoding.DER))
    c.admit(peer)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    with pytest.raises(PermissionDeniedError, match="web-1 expired at"):
        c.admit(peer, now=later)


def test_fleet_activity_carries_agent_version_and_current_certificate_expiry(
    env: Env, start: StartCollector
) -> None:
    """What the fleet view shows: the agent's User-Agent and the certificate it last used."""
    c = start()
    client = enroll(env, "web-1", minutes=30)
    shipper = _shipper(c, client)
    shipper.request("GET", "/v1/health")
    shipper.close()
    seen = c.activity.snapshot()["web-1"]
    not_after = x509.load_pem_x509_certificates(client.cert.read_bytes())[0].not_valid_after_utc
    assert seen["agent"] == f"garrison-agent/{garrison.__version__}"
    assert seen["cert_not_after"] == not_after.isoformat(timespec="seconds")


def test_a_certificate_from_a_new_address_is_on_the_record(env: Env, start: StartCollector) -> None:
    """The same host certificate from 127.0.0.2 after 127.0.0.1: one audit event naming both;
    a restarted collector remembers the address from its published snapshot."""
    c = start()
    client = enroll(env, "web-1")
    host, port = c.address

    def health_from(source: str) -> int:
        conn = http.client.HTTPSConnection(
            host, port, context=client.context(), timeout=10, source_address=(source, 0)
        )
        try:
            conn.request("GET", "/v1/health")
            return conn.getresponse().status
        finally:
            conn.close()

    assert [health_from(a) for a in ("127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2")] == [
        200
    ] * 4
    moved = [e for e in stored(env, "audit") if e["action"] == "collector.address.changed"]
    assert [(e["source_ip"], e["request_parameters"]) for e in moved] == [
        ("127.0.0.2", {"previous_ip": "127.0.0.1"})
    ]
    assert c.activity.snapshot()["web-1"]["address"] == "127.0.0.2"
    restarted = HostActivity()
    restarted.remember_addresses(c.activity.snapshot())
    assert restarted.record("web-1", address="127.0.0.3") == "127.0.0.2"
