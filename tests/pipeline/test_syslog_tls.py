"""Syslog over TLS (RFC 5425): octet-counted frames from a certified device land in the store."""

from __future__ import annotations

import contextlib
import io
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.agent.identity import new_key_and_csr
from garrison.core.pki import CertificateAuthority
from garrison.core.tls import client_context
from garrison.logstore.store import Store
from garrison.pipeline.syslog_tls import FramingError, SyslogTLSServer, read_frame
from tests.pipeline.world import loopback_collector

SSHD = "<38>Dec  1 10:00:00 fw-1 sshd[42]: Failed password for root from 203.0.113.5 port 4711 ssh2"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[CertificateAuthority, Store, SyslogTLSServer, Path]]:
    """A collector's syslog listener on loopback."""
    world = loopback_collector(tmp_path)
    ca, store, collector = world.ca, world.store, world.collector
    server = SyslogTLSServer(collector, "127.0.0.1", 0)
    thread = server.start()
    yield ca, store, server, tmp_path
    server.shutdown()
    server.server_close()
    thread.join(5)
    collector.shutdown()
    store.close()


def _device(ca: CertificateAuthority, tmp: Path, name: str) -> ssl.SSLContext:
    key_pem, csr = new_key_and_csr(name)
    (tmp / f"{name}.key").write_bytes(key_pem)
    (tmp / f"{name}.crt").write_bytes(ca.sign_client(csr, name, 60))
    return client_context(tmp / f"{name}.crt", tmp / f"{name}.key", ca.cert_path)


def _send(server: SyslogTLSServer, ctx: ssl.SSLContext, payload: bytes) -> None:
    host, port = server.server_address[:2]
    with (
        socket.create_connection((str(host), int(port)), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(payload)
        tls.shutdown(socket.SHUT_WR)
        tls.recv(1)  # wait for the server to finish with this connection


def _frames(*messages: str) -> bytes:
    return b"".join(f"{len(m.encode())} {m}".encode() for m in messages)


def _wait(store: Store, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "system" in store.stream_names() and store.stream("system").next_offset >= count:
            break
        time.sleep(0.05)
    return [r.event() for r in store.stream("system").read(0, 1000)]


def test_frames_are_parsed_and_stored_as_the_certified_host(world: tuple) -> None:  # type: ignore[type-arg]
    """Messages are parsed (sshd fields) and carry the certificate's host, not the header's."""
    ca, store, server, tmp = world
    _send(
        server, _device(ca, tmp, "switch-1"), _frames(SSHD, "<13>Dec  1 10:00:01 fw-1 app: hello")
    )
    events = _wait(store, 2)
    assert [e["host"] for e in events] == ["switch-1", "switch-1"]
    assert [e["logged_host"] for e in events] == ["fw-1", "fw-1"]
    assert events[0]["src_ip"] == "203.0.113.5"
    assert events[0]["outcome"] == "failure"
    assert events[1]["message"] == "hello"


def test_no_certificate_no_entry(world: tuple) -> None:  # type: ignore[type-arg]
    """A device without a client certificate is cut off before a frame is read.

    Under TLS 1.3 the client sees its side of the handshake finish before the server checks the
    (missing) certificate, so the refusal arrives as an alert or a plain end of stream.
    """
    ca, store, server, _ = world
    ctx = ssl.create_default_context(cafile=str(ca.cert_path))
    with contextlib.suppress(ssl.SSLError, OSError):
        _send(server, ctx, _frames(SSHD))
    assert "system" not in store.stream_names() or store.stream("system").next_offset == 0


def test_framing() -> None:
    """Octet counting is enforced; garbage ends the connection with a reason."""
    assert read_frame(io.BytesIO(b"5 hello")) == b"hello"
    assert read_frame(io.BytesIO(b"")) is None
    for bad in (b"x hello", b"9999999 x", b"0 ", b"5 hel"):
        with pytest.raises(FramingError):
            read_frame(io.BytesIO(bad))
