"""Syslog over TLS (RFC 5425) for devices without an agent: octet-counted frames, mTLS.

Each connection is authenticated like an agent's (a client certificate from Garrison's CA, not
revoked); the certificate names the host, whatever the messages say. Frames are parsed with
the syslog/sshd parsers and made durable in batches. Syslog has no acknowledgements, so a
message is at most re-sent by the device, never silently dropped by the collector: a framing
error closes the connection, as RFC 5425 asks.
"""

from __future__ import annotations

import logging
import socketserver
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

from garrison.core.errors import GarrisonError
from garrison.events.parsers import line_parser
from garrison.events.schema import certify_host
from garrison.pipeline.tls_server import MTLSServerMixin

if TYPE_CHECKING:
    from garrison.pipeline.collector import Collector

log = logging.getLogger("garrison.collector")

MAX_FRAME = 64 * 1024
BATCH = 500
FLUSH_SECONDS = 1.0
IDLE_SECONDS = 300.0


class FramingError(Exception):
    """The peer did not send `MSG-LEN SP SYSLOG-MSG`."""


def read_frame(reader: Any) -> bytes | None:
    """One octet-counted frame, or None at a clean end of stream."""
    digits = b""
    while True:
        c = reader.read(1)
        if not c:
            if digits:
                raise FramingError("connection closed inside a frame length")
            return None
        if c == b" ":
            break
        if not c.isdigit() or len(digits) >= 6:
            raise FramingError(f"bad frame length {digits + c!r}")
        digits += c
    length = int(digits)
    if not 0 < length <= MAX_FRAME:
        raise FramingError(f"frame length {length} outside 1..{MAX_FRAME}")
    data = reader.read(length)
    if len(data) != length:
        raise FramingError("connection closed inside a frame")
    return bytes(data)


class _Handler(socketserver.StreamRequestHandler):
    server: SyslogTLSServer

    def handle(self) -> None:
        collector = self.server.collector
        peer = None
        try:
            peer = collector.identify(self.connection)
            collector.admit(peer)
        except GarrisonError as exc:
            log.warning("syslog-tls: refused %s: %s", self.client_address, exc)
            facts = {
                "action": "collector.syslog.connect",
                "source_ip": str(self.client_address[0]),
                "user_agent": "",
            }
            collector.audit(peer, facts, exc.http_status, exc)
            return
        collector.activity.record(peer.host, agent="syslog-tls", cert_not_after=peer.not_after)
        parse = line_parser("sshd")
        batch: list[dict[str, Any]] = []
        flushed = time.monotonic()
        self.connection.settimeout(IDLE_SECONDS)
        try:
            while (frame := read_frame(self.rfile)) is not None:
                event = certify_host(parse(frame), peer.host)
                event["transport"] = "syslog-tls"
                batch.append(event)
                if len(batch) >= BATCH or time.monotonic() - flushed > FLUSH_SECONDS:
                    self._flush(peer.host, batch)
                    batch, flushed = [], time.monotonic()
        except FramingError as exc:
            log.warning("syslog-tls: %s from %s; closing", exc, peer.host)
        except (OSError, ssl.SSLError) as exc:
            log.info("syslog-tls: connection from %s ended: %s", peer.host, exc)
        finally:
            self._flush(peer.host, batch)

    def _flush(self, host: str, batch: list[dict[str, Any]]) -> None:
        if batch:
            collector = self.server.collector
            collector.store.append(self.server.stream, batch)
            collector.activity.record(host, self.server.stream, len(batch))


class SyslogTLSServer(MTLSServerMixin, socketserver.ThreadingTCPServer):
    """The RFC 5425 listener of a collector (same CA, revocations, store)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, collector: Collector, host: str, port: int, stream: str = "system") -> None:
        self.collector = collector
        self.stream = stream
        super().__init__((host, port), _Handler)

    tls_name = "syslog-tls"

    def tls_context(self) -> ssl.SSLContext:
        """The collector's mTLS context."""
        return self.collector.ssl_context

    def start(self) -> threading.Thread:
        """Serve in a daemon thread."""
        thread = threading.Thread(target=self.serve_forever, name="syslog-tls", daemon=True)
        thread.start()
        return thread
