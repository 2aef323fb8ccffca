"""Notifications: signed webhooks and Slack messages, rate-limited into digests, spooled."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from garrison.core.errors import ConfigError
from garrison.detect.notify import Notifier, Route
from tests.factories import seed_finding

KEY = b"test-key"


class Receiver:
    """A loopback HTTP endpoint that records what it receives (or refuses, when told)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # stdlib naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.status == 200:
                    outer.received.append((dict(self.headers), body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _finding(n: int, severity: float = 5.0) -> dict[str, Any]:
    return seed_finding(id=f"fnd_{n:032d}", severity=severity, src_ip=f"198.51.100.{n}")


def test_webhooks_are_signed_and_slack_gets_text(tmp_path: Path, receiver: Receiver) -> None:
    notifier = Notifier(
        [Route("webhook", receiver.url), Route("slack", receiver.url)], KEY, tmp_path
    )
    notifier.notify([_finding(1)])
    (hook_headers, hook_body), (_, slack_body) = receiver.received
    expected = hmac.new(KEY, hook_body, hashlib.sha256).hexdigest()
    assert hook_headers["X-Garrison-Signature"] == f"sha256={expected}"
    assert hook_headers["X-Garrison-Delivery"].startswith("ntf_")
    assert json.loads(hook_body)["findings"][0]["src_ip"] == "198.51.100.1"
    assert json.loads(slack_body)["text"].startswith(
        "[medium 5] SSH brute force (fast): 198.51.100.1"
    )


def test_low_findings_are_not_announced(tmp_path: Path, receiver: Receiver) -> None:
    Notifier([Route("webhook", receiver.url, 7.0)], KEY, tmp_path).notify(
        [_finding(1, 5.0), _finding(2, 8.0)]
    )
    assert [b["findings"][0]["severity"] for b in receiver.bodies()] == [8.0]


def test_a_storm_becomes_a_digest(tmp_path: Path, receiver: Receiver) -> None:
    clock = Clock()
    notifier = Notifier(
        [Route("webhook", receiver.url)], KEY, tmp_path, max_per_minute=3, clock=clock
    )
    notifier.notify([_finding(n) for n in range(10)])
    assert len(receiver.received) == 3
    notifier.flush()
    assert len(receiver.received) == 3  # the minute is not over
    clock.now += 60
    notifier.flush()
    digest = receiver.bodies()[-1]
    assert digest["text"].startswith("7 more findings in the last minute")
    assert len(digest["findings"]) == 7


def test_a_failed_delivery_waits_in_the_spool(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier([Route("webhook", receiver.url)], KEY, tmp_path)
    receiver.status = 503
    notifier.notify([_finding(1)])
    assert "kept for the next try" in caplog.text
    assert len(list(tmp_path.rglob("*.json"))) == 1
    receiver.status = 200
    notifier.flush()
    assert len(receiver.received) == 1
    assert list(tmp_path.rglob("*.json")) == []


def test_routes_refuse_plain_http_elsewhere_and_unknown_kinds() -> None:
    with pytest.raises(ConfigError, match="https"):
        Route("webhook", "http://hooks.example/x")
    with pytest.raises(ConfigError, match="kind"):
        Route("pager", "https://hooks.example/x")
