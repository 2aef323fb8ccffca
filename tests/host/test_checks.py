"""Health checks against real servers on loopback, and the N-of-M verdict."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from garrison.host.checks import (
    CertificateCheck,
    CommandCheck,
    HTTPCheck,
    ProcessCheck,
    Result,
    SystemdCheck,
    TCPCheck,
    Verdict,
)
from tests.ssh.helpers import free_port


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.3)
        body = b"status: ok" if self.path != "/broken" else b"oops"
        self.send_response(200 if self.path != "/broken" else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_tcp(web: str) -> None:
    port = int(web.rsplit(":", 1)[1])
    assert TCPCheck("web", "127.0.0.1", port).run().healthy
    closed = TCPCheck("none", "127.0.0.1", free_port(), timeout_s=1).run()
    assert not closed.healthy
    assert "refused" in closed.detail.lower()


def test_http_status_body_and_latency(web: str) -> None:
    assert HTTPCheck("ok", f"{web}/", body_contains="status: ok").run().healthy
    broken = HTTPCheck("broken", f"{web}/broken").run()
    assert (broken.healthy, broken.detail) == (False, f"{web}/broken: status 503, not 200")
    assert "lacks 'ready'" in HTTPCheck("body", f"{web}/", body_contains="ready").run().detail
    slow = HTTPCheck("slow", f"{web}/slow", max_seconds=0.1).run()
    assert not slow.healthy
    assert "over 0.1 s" in slow.detail
    with pytest.raises(ValueError, match="https://"):
        HTTPCheck("clear", "http://192.0.2.1/")


def _certificate(folder: Path, days: int) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256())
    )  # fmt: skip
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def test_a_certificate_expiring_soon(tmp_path: Path) -> None:
    context = _certificate(tmp_path, days=5)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        soon = CertificateCheck("tls", "127.0.0.1", port, min_days=14).run()
    finally:
        thread.join(10)
        listener.close()
    assert not soon.healthy
    assert "expires in 4." in soon.detail or "expires in 5." in soon.detail


def test_process_command_and_systemd() -> None:
    me = psutil.Process(os.getpid()).name()
    assert ProcessCheck("me", me).run().healthy
    assert not ProcessCheck("ghost", "no-such-process-here").run().healthy
    assert CommandCheck("true", ("true",)).run().healthy
    failed = CommandCheck("false", ("sh", "-c", "echo disk full >&2; exit 3")).run()
    assert (failed.healthy, failed.detail) == (False, "exit 3: disk full")
    unit = SystemdCheck("ghost", "no-such-unit-garrison.service").run()
    assert not unit.healthy  # inactive, or no systemd at all: never healthy


def test_n_of_m_and_no_flapping() -> None:
    verdict = Verdict(failures=3, of=5)
    up, down = Result(True, "", 0.0), Result(False, "", 0.0)
    changes = [verdict.add(r) for r in (down, up, down, up)]
    assert changes == [False] * 4
    assert verdict.healthy
    assert verdict.add(down)
    assert not verdict.healthy
    # a check flapping around its limit stays down until three in a row pass
    assert [verdict.add(r) for r in (up, down, up, up)] == [False] * 4
    assert verdict.add(up)
    assert verdict.healthy
    with pytest.raises(ValueError, match="N-of-M"):
        Verdict(failures=6, of=5)
