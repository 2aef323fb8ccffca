"""Digest copies off the store host: a directory and a webhook with an on-disk spool."""

from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path

import msgspec
import pytest

from garrison.core.errors import ConfigError
from garrison.core.settings import load
from garrison.logstore import digests
from garrison.logstore.digests import SignedDigest, Signer
from garrison.logstore.export import DirectoryExport, WebhookExport
from garrison.logstore.store import Store


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[SignedDigest] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(msgspec.json.decode(body, type=SignedDigest))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    """A signing key."""
    return Signer.load_or_create(tmp_path / "key.pem", b"pass")


@pytest.fixture
def receiver() -> tuple[str, int]:
    """A URL and port for a webhook receiver that the test starts when it wants."""
    _Receiver.received = []
    port = _free_port()
    return f"http://127.0.0.1:{port}/digests", port


def test_directory_export_keeps_key_and_latest(tmp_path: Path, signer: Signer) -> None:
    """Every digest and the public key land in the export directory."""
    out = tmp_path / "elsewhere"
    store = Store(tmp_path / "s", signer=signer, on_digest=DirectoryExport(out, signer))
    store.append("audit", [{"n": 1}])
    signed = store.stream("audit").checkpoint()
    assert signed is not None
    assert digests.load_public((out / "digest-public.pem").read_bytes()) is not None
    latest = digests.read(out / "audit" / "latest.json")
    assert latest.signature == signed.signature


def test_webhook_spools_while_down_and_delivers_in_order(
    tmp_path: Path, signer: Signer, receiver: tuple[str, int]
) -> None:
    """A digest made while the receiver is down is delivered, in order, with the next one."""
    url, port = receiver
    sink = WebhookExport(url, tmp_path / "spool", timeout=2)
    errors: list[Exception] = []

    def on_digest(signed: SignedDigest) -> None:
        try:
            sink(signed)
        except OSError as exc:
            errors.append(exc)

    store = Store(tmp_path / "s", signer=signer, on_digest=on_digest)
    store.append("audit", [{"n": 1}])
    first = store.stream("audit").checkpoint()
    assert errors  # nobody listening yet
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1
    server = http.server.HTTPServer(("127.0.0.1", port), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        store.append("audit", [{"n": 2}])
        second = store.stream("audit").checkpoint()
    finally:
        server.shutdown()
        server.server_close()
    assert first is not None
    assert second is not None
    assert [d.signature for d in _Receiver.received] == [first.signature, second.signature]
    assert not list((tmp_path / "spool").glob("*.json"))


def test_webhook_url_must_be_https_off_loopback() -> None:
    """Digests never travel in clear text over a network."""
    with pytest.raises(ConfigError, match="digest_webhook_url"):
        load(environ={"GARRISON_DIGEST_WEBHOOK_URL": "http://siem.example/hook"})
    assert load(environ={"GARRISON_DIGEST_WEBHOOK_URL": "http://127.0.0.1:9/x"})
