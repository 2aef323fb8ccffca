"""The collector: hosts ship batches of events over mutual TLS; each batch is stored once.

Identity
    A host is known only by its client certificate (SAN DNS name, else CN), issued by the data
    dir's CA (`CertificateAuthority.sign_client`). Certificates from another CA, expired ones
    and connections without one fail the TLS handshake. Hosts or serials listed in the
    revocation file (``pki/revoked-hosts.json``: ``{"hosts": [...], "serials": ["hex", ...]}``,
    reloaded when it changes) get 403. An unreadable revocation file refuses every request
    (fail closed) until it is fixed.

Delivery
    ``POST /v1/batches`` takes ``{"batch_id", "stream", "events"}`` (optionally zstd-compressed).
    Every event gets ``host`` (an event naming another host refuses the whole batch) and
    ``_batch`` = ``<host>/<batch_id>``, and the batch is written with ONE `Stream.append`, so a
    crash stores all of it or none. Only then is it acknowledged.

Duplicates (at-least-once shipping made effectively-once)
    A batch id already stored for the same host is acknowledged with ``"duplicate": true`` and
    not stored again. The collector remembers every (host, batch id) it stored since it started
    (the newest `RECENT_LIMIT`), and at start it rebuilds that memory from the ``_batch`` fields
    of each batch stream's active log and newest sealed segment. The dedup window is therefore
    at least the current segment of a stream (up to 64 MiB or one hour by default) plus
    everything since the collector started; a shipper retrying within minutes is always inside
    it. Batch ids are per host, across streams.

Back-pressure
    At most ``max_inflight`` requests read bodies and write at once; more get 503 with
    ``Retry-After`` at once, before their body is read. Connections are capped too
    (``max_connections``; beyond it a new connection is closed without a handshake), bodies are
    at most `MAX_BODY` bytes (413) compressed and decompressed, and idle or slow connections
    time out. Memory is bounded by ``max_inflight * MAX_BODY`` plus the decoded events.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import signal
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import zstandard
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from garrison.core.errors import (
    GarrisonError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    UsageError,
    ValidationError,
)
from garrison.core.paths import DataDir
from garrison.core.pki import HOST_RE, CertificateAuthority
from garrison.core.secrets import KeyRing
from garrison.core.settings import Settings
from garrison.core.tls import mtls_server_context, renew_if_due
from garrison.demo import DEMO_STREAM
from garrison.events.audit import Actor, AuditEvent, AuditTrail, new_id, now_iso, outcome_for
from garrison.logstore import segment
from garrison.logstore.local import open_store
from garrison.logstore.store import Store
from garrison.pipeline import activity as host_activity
from garrison.pipeline.activity import HostActivity
from garrison.pipeline.leases import Leases
from garrison.pipeline.syslog_tls import SyslogTLSServer
from garrison.pipeline.tls_server import MTLSServerMixin
from garrison.ssh.ca import SSHAuthority
from garrison.ssh.hosts import HostTrust, parse_principals

log = logging.getLogger("garrison.collector")

#: Streams a host may ship to.
STREAMS = frozenset({"web", "ssh", "app", "flow", "system", "raw", "metrics", DEMO_STREAM})
SSH_PATHS = frozenset({"/v1/ssh", "/v1/ssh/host-certificate"})
LEASE_PATHS = frozenset({"/v1/leases", "/v1/leases/release"})
#: Remediation steps of an agent that change something (or would, in dry-run): audited.
AUDITED_STEPS = frozenset({"acted", "succeeded", "failed", "dry_run", "breaker_open", "rearmed"})
BATCH_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
#: Largest request body, compressed or not, and largest decompressed body.
MAX_BODY = 8 * 1024 * 1024
#: An oversized body up to this size is read and dropped before the 413, so that a client that
#: sends its whole body first sees the answer; beyond it the connection is just closed.
DRAIN_LIMIT = 4 * MAX_BODY
MAX_EVENTS = 50_000
#: (host, batch id) pairs remembered for duplicate detection.
RECENT_LIMIT = 200_000
RETRY_AFTER_SECONDS = 1
IDLE_SECONDS = 30
CERT_NAME = "collector"

_SCAN_CHUNK = 10_000


class SaturatedError(GarrisonError):
    """Too many requests in flight: the client should retry after a moment."""

    http_status = 503
    code = "busy"


class TooLargeError(UsageError):
    """The body exceeds `MAX_BODY`."""

    http_status = 413
    code = "too_large"


class _BatchMark(msgspec.Struct):
    batch: str = msgspec.field(default="", name="_batch")


_decode_mark = msgspec.json.Decoder(_BatchMark).decode


class _LeaseRequest(msgspec.Struct, forbid_unknown_fields=True):
    service: str
    zone: str
    ttl_s: float = 300.0


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    batch_id: str
    stream: str
    events: list[dict[str, Any]]


_decode_batch = msgspec.json.Decoder(_Batch).decode


@dataclass(frozen=True)
class Peer:
    """The authenticated host behind a connection."""

    host: str
    serial: int
    not_after: dt.datetime


def peer_from_der(der: bytes) -> Peer:
    """The host a verified client certificate names (SAN DNS, else CN), serial and expiry."""
    cert = x509.load_der_x509_certificate(der)
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise PermissionDeniedError("the certificate is not a client certificate")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not names or not HOST_RE.match(names[0]):
        raise PermissionDeniedError("the certificate names no valid host")
    return Peer(names[0].lower(), cert.serial_number, cert.not_valid_after_utc)


class Revocations:
    """The revocation file, reloaded whenever its size, inode or mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._hosts: frozenset[str] = frozenset()
        self._serials: frozenset[int] = frozenset()
        self._error = ""

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._hosts, self._serials, self._error = (
                None,
                frozenset(),
                frozenset(),
                "",
            )
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        try:
            data = json.loads(self.path.read_bytes())
            hosts = frozenset(str(h).lower() for h in data.get("hosts", []))
            serials = frozenset(int(str(s).replace(":", ""), 16) for s in data.get("serials", []))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            self._stamp, self._error = stamp, f"{self.path} is unreadable: {exc}"
            log.error("revocation list %s", self._error)
            return
        self._stamp, self._hosts, self._serials, self._error = stamp, hosts, serials, ""
        log.info("revocation list loaded: %d hosts, %d serials", len(hosts), len(serials))

    def check(self, peer: Peer) -> None:
        """Raise unless `peer` may use the collector."""
        with self._lock:
            self._reload()
            if self._error:
                raise StoreError(
                    "the revocation list cannot be read; refusing every host",
                    hint=self._error,
                )
            if peer.host in self._hosts or peer.serial in self._serials:
                raise PermissionDeniedError(f"host {peer.host} is revoked")


class RecentBatches:
    """The (host, batch id) pairs stored recently, oldest forgotten first."""

    def __init__(self, limit: int = RECENT_LIMIT) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._seen

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def add(self, key: str) -> None:
        """Remember `key` as stored."""
        with self._lock:
            self._add(key)

    def _add(self, key: str) -> None:
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)

    def claim(self, key: str) -> bool:
        """False if `key` is stored already; raises if another request is storing it now."""
        with self._lock:
            if key in self._seen:
                return False
            if key in self._pending:
                raise SaturatedError("this batch is being stored by another request; retry")
            self._pending.add(key)
            return True

    def release(self, key: str, *, stored: bool) -> None:
        """End a claim; `stored` remembers the key."""
        with self._lock:
            self._pending.discard(key)
            if stored:
                self._add(key)


def scan_batches(store: Store, streams: Iterable[str] = STREAMS) -> list[str]:
    """The ``_batch`` marks in the active log and newest sealed segment of each stream."""
    marks: list[str] = []
    on_disk = set(store.stream_names())
    for name in sorted(set(streams) & on_disk):
        stream = store.stream(name)
        sealed = stream.sealed_segments()
        offset = segment.first_of(sealed[-1]) if sealed else stream.active_first
        while True:
            records = stream.read(offset, _SCAN_CHUNK)
            if not records:
                break
            for record in records:
                if b'"_batch"' in record.payload:
                    try:
                        mark = _decode_mark(record.payload).batch
                    except msgspec.DecodeError:
                        continue
                    if mark:
                        marks.append(mark)
            offset = records[-1].offset + 1
    return marks


class _Server(MTLSServerMixin, ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    collector: Collector

    def tls_context(self) -> ssl.SSLContext:
        return self.collector.ssl_context

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self.collector.connections.acquire(blocking=False):
            return True
        log.warning("collector: connection limit reached; closing %s", client_address)
        return False

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.collector.connections.release()  # the thread that would have released it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.collector.connections.release()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "garrison-collector"
    sys_version = ""
    timeout = IDLE_SECONDS
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # stdlib signature
        log.debug("collector %s: " + format, self.address_string(), *args)

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, exc: GarrisonError) -> None:
        headers: dict[str, str] = {}
        if exc.http_status == 503:
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        # The body may be unread (403, 413, 503, bad length): never reuse the connection.
        self.close_connection = True
        self._send(exc.http_status, {"error": {"code": exc.code, "message": exc.message}}, headers)

    def _dispatch(self, method: str) -> None:
        collector = self.server.collector
        path = self.path.split("?", 1)[0]
        peer: Peer | None = None
        try:
            peer = collector.identify(self.connection)
            collector.admit(peer)
            moved = collector.activity.record(
                peer.host,
                agent=self.headers.get("User-Agent"),
                cert_not_after=peer.not_after,
                address=str(self.client_address[0]),
            )
            if moved is not None:  # the credential is used from somewhere new: on the record
                facts = self._request_facts(method, path) | {"action": "collector.address.changed"}
                collector.audit(peer, facts, 200, parameters={"previous_ip": moved})
            if path == "/v1/health" and method == "GET":
                self._send(200, {"status": "ok", "host": peer.host})
            elif path == "/v1/batches" and method == "POST":
                with collector.slot():
                    body = self._read_body()
                    self._send(200, collector.accept(peer, body))
            elif path == "/v1/renew" and method == "POST":
                with collector.slot():
                    reply = collector.renew_for(peer, self._read_body())
                    collector.audit(peer, self._request_facts(method, path), 200)
                    self._send(200, reply)
            elif path == "/v1/ssh" and method == "GET":
                self._send(200, collector.ssh_bundle())
            elif path == "/v1/ssh/host-certificate" and method == "POST":
                with collector.slot():
                    reply = collector.host_certificate_for(peer, self._read_body())
                    facts = self._request_facts(method, path)
                    collector.audit(peer, facts, 200, parameters={"serial": reply["serial"]})
                    self._send(200, reply)
            elif path in LEASE_PATHS and method == "POST":
                with collector.slot():
                    reply, parameters = collector.lease(peer, path, self._read_body())
                    facts = self._request_facts(method, path)
                    collector.audit(peer, facts, 200, parameters=parameters)
                    self._send(200, reply)
            elif path in {"/v1/health", "/v1/batches", "/v1/renew", *SSH_PATHS, *LEASE_PATHS}:
                self.close_connection = True
                self._send(
                    405,
                    {"error": {"code": "method_not_allowed", "message": f"{method} not allowed"}},
                )
            else:
                raise NotFoundError(f"no such endpoint: {path}")
        except GarrisonError as exc:
            if exc.http_status in {401, 403}:
                collector.audit(peer, self._request_facts(method, path), exc.http_status, exc)
            self._error(exc)
        except Exception:
            log.exception("collector: request failed")
            self.close_connection = True
            self._send(500, {"error": {"code": "internal_error", "message": "internal error"}})

    def _request_facts(self, method: str, path: str) -> dict[str, str]:
        return {
            "action": f"collector.{path.rsplit('/', 1)[-1]}.{method.lower()}",
            "source_ip": str(self.client_address[0]),
            "user_agent": (self.headers.get("User-Agent") or "")[:200],
        }

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise _LengthRequiredError("send the body with Content-Length, not chunked")
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.isdigit():
            raise _LengthRequiredError("Content-Length is required")
        length = int(raw_length)
        if length > MAX_BODY:
            if length <= DRAIN_LIMIT:  # read and drop it, so the client sees the answer
                self._discard(length)
            raise TooLargeError(f"the body is {length} bytes; at most {MAX_BODY} are accepted")
        body = self.rfile.read(length)
        if len(body) != length:
            raise UsageError("the body ended before Content-Length")
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "zstd":
            return _unzstd(body)
        if encoding != "identity":
            raise _UnsupportedEncodingError(
                f"Content-Encoding {encoding!r} is not supported; use zstd"
            )
        return body

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 64 * 1024))
            if not chunk:
                return
            length -= len(chunk)

    def do_GET(self) -> None:  # stdlib naming
        """Health check."""
        self._dispatch("GET")

    def do_POST(self) -> None:  # stdlib naming
        """Batches."""
        self._dispatch("POST")

    def do_PUT(self) -> None:  # stdlib naming
        """Not allowed."""
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # stdlib naming
        """Not allowed."""
        self._dispatch("DELETE")


class _LengthRequiredError(UsageError):
    http_status = 411
    code = "length_required"


class _UnsupportedEncodingError(UsageError):
    http_status = 415
    code = "unsupported_encoding"


def _unzstd(body: bytes) -> bytes:
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)) as reader:
            out = reader.read(MAX_BODY + 1)
    except zstandard.ZstdError as exc:
        raise UsageError(f"the body is not valid zstd: {exc}") from None
    if len(out) > MAX_BODY:
        raise TooLargeError(f"the body decompresses to more than {MAX_BODY} bytes")
    return out


def parse_batch(body: bytes) -> _Batch:
    """Validate a batch body (without the host checks)."""
    try:
        batch = _decode_batch(body)
    except msgspec.DecodeError as exc:
        raise ValidationError(f"invalid batch: {exc}") from None
    if not BATCH_ID_RE.match(batch.batch_id):
        raise ValidationError("batch_id must be 1-100 characters of A-Z a-z 0-9 _ . : -")
    if batch.stream not in STREAMS:
        raise ValidationError(f"stream must be one of {', '.join(sorted(STREAMS))}")
    if not 1 <= len(batch.events) <= MAX_EVENTS:
        raise ValidationError(f"events must hold 1 to {MAX_EVENTS} objects")
    return batch


class Collector:
    """The HTTPS collector of one store."""

    def __init__(
        self,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int,
        ssl_context: ssl.SSLContext,
        revocations_path: Path,
        max_inflight: int = 8,
        max_connections: int | None = None,
        renew: Callable[[str, bytes], bytes] | None = None,
        ssh: HostTrust | None = None,
    ) -> None:
        if max_inflight < 1:
            raise ValidationError("max_inflight must be at least 1")
        self.store = store
        self.renew = renew
        self.ssh = ssh
        self.ssl_context = ssl_context
        self.revocations = Revocations(revocations_path)
        self.inflight = threading.BoundedSemaphore(max_inflight)
        self.connections = threading.BoundedSemaphore(max_connections or max_inflight * 8)
        self.recent = RecentBatches()
        self.activity = HostActivity()
        self.leases = Leases()
        self._serving = threading.Event()
        started = time.monotonic()
        for mark in scan_batches(store):
            self.recent.add(mark)
        log.info(
            "collector: %d recent batch ids recovered in %.2fs",
            len(self.recent),
            time.monotonic() - started,
        )
        self._server = _Server((host, port), _Handler)
        self._server.collector = self

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) listened on (port resolved when 0 was asked)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def serve_forever(self) -> None:
        """Serve until `shutdown`."""
        self._serving.set()
        self._server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving (from another thread, if serving) and close the listening socket."""
        if self._serving.is_set():
            self._server.shutdown()
        self._server.server_close()

    def identify(self, conn: Any) -> Peer:
        """The host a TLS connection's verified client certificate names."""
        der = conn.getpeercert(binary_form=True) if isinstance(conn, ssl.SSLSocket) else None
        if not der:
            raise PermissionDeniedError("a client certificate is required")
        return peer_from_der(der)

    def admit(self, peer: Peer, now: dt.datetime | None = None) -> None:
        """Refuse a revoked host, or a certificate past its expiry.

        The handshake checked the validity period when the connection opened; a kept-alive
        connection outlives that moment, so every request checks it again.
        """
        if (now or dt.datetime.now(dt.UTC)) > peer.not_after:
            raise PermissionDeniedError(
                f"the client certificate of {peer.host} expired at "
                f"{peer.not_after.isoformat()}; renew before it expires"
            )
        self.revocations.check(peer)

    def renew_for(self, peer: Peer, body: bytes) -> dict[str, Any]:
        """A fresh client certificate for an authenticated, unrevoked host (its CSR in `body`)."""
        if self.renew is None:
            raise NotFoundError("certificate renewal is not served here")
        try:
            csr = msgspec.json.decode(body, type=dict[str, str])["csr"]
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
            raise UsageError('send {"csr": "<PEM>"}') from None
        chain = self.renew(peer.host, csr.encode())
        log.info("collector: renewed the certificate of %s", peer.host)
        return {"host": peer.host, "certificate": chain.decode()}

    def ssh_bundle(self) -> dict[str, Any]:
        """What the host's sshd must trust (404 where the collector serves no SSH)."""
        if self.ssh is None:
            raise NotFoundError("SSH configuration is not served here")
        return self.ssh.bundle()

    def host_certificate_for(self, peer: Peer, body: bytes) -> dict[str, str]:
        """A host certificate for the authenticated host's key (in `body`)."""
        if self.ssh is None:
            raise NotFoundError("SSH host certificates are not served here")
        try:
            key = msgspec.json.decode(body, type=dict[str, str])["public_key"]
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
            raise UsageError('send {"public_key": "ssh-ed25519 AAAA..."}') from None
        issued = self.ssh.host_certificate(peer.host, key)
        log.info("collector: SSH host certificate %d for %s", issued.serial, peer.host)
        return {"certificate": issued.certificate, "serial": str(issued.serial)}

    def audit(
        self,
        peer: Peer | None,
        facts: dict[str, str],
        status: int,
        error: GarrisonError | None = None,
        *,
        parameters: dict[str, str] | None = None,
    ) -> None:
        """Record a renewal, a refusal or a host's new address on the audit stream (accepted
        batches are data: their events carry ``_batch``). A renewal that cannot be recorded is
        not handed out."""
        event = AuditEvent(
            event_id=new_id(),
            time=now_iso(),
            actor=Actor("host", name=peer.host) if peer else Actor("anonymous"),
            action=facts["action"],
            outcome=outcome_for(status),
            read_only=False,
            source_ip=facts["source_ip"],
            user_agent=facts["user_agent"],
            resource=peer.host if peer else "",
            request_parameters={"reason": error.message} if error else (parameters or {}),
            status=status,
            error_code=error.code if error else "",
        )
        try:
            AuditTrail(self.store).record(event)
        except StoreError:
            if error is None:
                raise
            log.exception("collector: cannot record the refusal of %s", facts["source_ip"])

    def lease(self, peer: Peer, path: str, body: bytes) -> tuple[dict[str, Any], dict[str, str]]:
        """Grant or refuse (``/v1/leases``) or give back (``/v1/leases/release``) a host's
        remediation lease; the reply, and what the audit event records."""
        try:
            asked = msgspec.json.decode(body, type=_LeaseRequest)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UsageError(f'send {{"service", "zone", "ttl_s"}}: {exc}') from None
        parameters = {"service": asked.service, "zone": asked.zone}
        if path.endswith("/release"):
            self.leases.release(asked.service, asked.zone, peer.host)
            return {"released": True}, parameters
        try:
            granted, reason = self.leases.acquire(asked.service, asked.zone, peer.host, asked.ttl_s)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return {"granted": granted, "reason": reason}, parameters | {
            "granted": str(granted).lower(),
            "reason": reason,
        }

    def _audit_remediation(self, peer: Peer, events: list[dict[str, Any]]) -> None:
        """Each remediation step an agent reports, also on the audit stream (actor: the host)."""
        for event in events:
            if event.get("class") != "remediation_activity":
                continue
            outcome = str(event.get("outcome", ""))
            if outcome not in AUDITED_STEPS:
                continue
            AuditTrail(self.store).record(
                AuditEvent(
                    event_id=new_id(),
                    time=now_iso(),  # the collector's clock; the host's is a parameter
                    actor=Actor("host", name=peer.host),
                    action=f"agent.remediation.{outcome}",
                    outcome="error" if outcome in {"failed", "breaker_open"} else "success",
                    read_only=outcome == "dry_run",
                    resource=str(event.get("subject", "")),
                    request_parameters={
                        k: str(event[k])[:500]
                        for k in ("action", "plan", "detail", "attempt", "dry_run", "rearmed_by")
                        if k in event
                    }
                    | {"reported_time": str(event.get("time", ""))[:40]},
                    status=200,
                )
            )

    def slot(self) -> _Slot:
        """One of the `max_inflight` request slots, or `SaturatedError` at once."""
        return _Slot(self.inflight)

    def accept(self, peer: Peer, body: bytes) -> dict[str, Any]:
        """Store one batch for `peer` (or recognise it as a duplicate); the reply body."""
        batch = parse_batch(body)
        for i, event in enumerate(batch.events):
            claimed = event.get("host")
            if claimed is not None and str(claimed).lower() != peer.host:
                raise PermissionDeniedError(
                    f"event {i} claims host {claimed!r}; this certificate is for {peer.host}"
                )
        key = f"{peer.host}/{batch.batch_id}"
        if not self.recent.claim(key):
            return {"batch_id": batch.batch_id, "stored": 0, "duplicate": True}
        stored = False
        try:
            events = [{**event, "host": peer.host, "_batch": key} for event in batch.events]
            if batch.stream == "system":  # first: a retried batch is a duplicate, not audited
                self._audit_remediation(peer, events)
            offsets = self.store.append(batch.stream, events)  # one Stream.append
            stored = True
        except OSError as exc:
            raise StoreError(f"cannot store the batch: {exc}") from exc
        finally:
            self.recent.release(key, stored=stored)
        self.activity.record(peer.host, batch.stream, len(offsets))
        return {"batch_id": batch.batch_id, "stored": len(offsets), "first_offset": offsets[0]}


class _Slot:
    def __init__(self, semaphore: threading.BoundedSemaphore) -> None:
        self._semaphore = semaphore

    def __enter__(self) -> None:
        if not self._semaphore.acquire(blocking=False):
            raise SaturatedError("the collector is busy; retry shortly")

    def __exit__(self, *exc: object) -> None:
        self._semaphore.release()


def _renew_forever(
    stop: threading.Event,
    ca: CertificateAuthority,
    keyring: KeyRing,
    ctx: ssl.SSLContext,
    hosts: list[str],
) -> None:
    """Renew the collector's own certificate when due (the store role maintains the store)."""
    while not stop.wait(60):
        try:
            issued = renew_if_due(ctx, ca, keyring, CERT_NAME, hosts)
        except (GarrisonError, OSError) as exc:
            log.error("collector certificate renewal failed: %s", exc)
        else:
            if issued is not None:
                log.info("collector certificate renewed; valid until %s", issued.not_after)


def _publish_forever(stop: threading.Event, activity: HostActivity, path: Path) -> None:
    """Publish per-host activity for the fleet view every 10 seconds."""
    while not stop.wait(10):
        try:
            activity.publish(path)
        except OSError as exc:
            log.error("collector: cannot publish host activity: %s", exc)


def _host_trust(settings: Settings, data: DataDir, keyring: KeyRing) -> HostTrust:
    authority = SSHAuthority(data.ssh, keyring)
    if not authority.exists():
        authority.init()
    return HostTrust(
        authority,
        data.ssh_krl,
        parse_principals(settings.ssh_principals),
        settings.ssh_host_cert_days,
    )


def run(settings: Settings, *, max_inflight: int = 8) -> None:
    """Run the collector of a data dir until interrupted (the CLI wires this)."""
    data = DataDir(settings.data_path).ensure()
    keyring = KeyRing.load_or_create(data.kek)
    ca = CertificateAuthority(data.pki, keyring)
    ca.init()
    hosts = list(dict.fromkeys([settings.host, "127.0.0.1", "localhost"]))
    issued = ca.ensure_server(CERT_NAME, hosts)
    ctx = mtls_server_context(issued, keyring, CERT_NAME, ca.cert_path)
    store = open_store(settings)
    stop = threading.Event()
    try:
        collector = Collector(
            store,
            host=settings.host,
            port=settings.collector_listen_port,
            ssl_context=ctx,
            revocations_path=data.revocations,
            renew=lambda host, csr: ca.sign_client(csr, host, settings.host_cert_minutes),
            max_inflight=max_inflight,
            ssh=_host_trust(settings, data, keyring),
        )
        collector.activity.remember_addresses(host_activity.read(data.activity))
        keeper = threading.Thread(
            target=_renew_forever,
            args=(stop, ca, keyring, ctx, hosts),
            name="collector-maintain",
            daemon=True,
        )
        keeper.start()
        threading.Thread(
            target=_publish_forever,
            args=(stop, collector.activity, data.activity),
            name="collector-activity",
            daemon=True,
        ).start()
        if threading.current_thread() is threading.main_thread():
            # serve_forever runs here: stop it from another thread, as shutdown() waits for it.
            signal.signal(
                signal.SIGTERM,
                lambda *_: threading.Thread(target=collector._server.shutdown, daemon=True).start(),
            )
        if settings.syslog_tls_port:
            syslog = SyslogTLSServer(collector, settings.host, settings.syslog_tls_port)
            syslog.start()
            log.info("syslog over TLS (RFC 5425) on %s:%d", settings.host, settings.syslog_tls_port)
        log.info("collector listening on https://%s:%d", *collector.address)
        try:
            collector.serve_forever()
        except KeyboardInterrupt:
            log.info("collector stopping")
        finally:
            stop.set()
            collector._server.server_close()
            keeper.join(timeout=30)
    finally:
        store.close()


__all__ = ["Collector", "Peer", "Revocations", "parse_batch", "run"]
