"""Notifications: signed webhooks and Slack messages, rate-limited into digests, spooled."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from garrison.core import settings
from garrison.core.errors import ConfigError
from garrison.core.pki import CertificateAuthority
from garrison.core.secrets import KeyRing
from garrison.core.tls import server_context
from garrison.detect.notify import Mailer, Notifier, Route
from tests.detect.helpers import Receiver
from tests.factories import seed_finding

KEY = b"test-key"


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


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it is sent."""

    def __init__(self, host: str = "127.0.0.1", **options: Any) -> None:
        self.messages: list[Message] = []
        self.logins: list[str] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802  # aiosmtpd's hook name
                outer.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, auth: Any
        ) -> AuthResult:
            ok = auth.login == b"alerts" and auth.password == b"s3cret pass"
            if ok:
                outer.logins.append(auth.login.decode())
            return AuthResult(success=ok)

        with socket.socket() as probe:  # aiosmtpd needs a port before it starts
            probe.bind((host, 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(
            Handler(), hostname=host, port=self.port, authenticator=authenticate, **options
        )
        self.controller.start()


@pytest.fixture
def pki(tmp_path: Path) -> CertificateAuthority:
    ca = CertificateAuthority(tmp_path / "pki", KeyRing.load_or_create(tmp_path / "kek"))
    ca.init()
    return ca


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(auth_require_tls=False)
    yield box
    box.controller.stop()


def test_mail_names_the_finding_what_to_do_and_where(tmp_path: Path, mailbox: Mailbox) -> None:
    mailer = Mailer(f"smtp://127.0.0.1:{mailbox.port}", "garrison@example.com")
    notifier = Notifier(
        [Route("email", "ops@example.com", 4.0), Route("email", "ciso@example.com", 8.0)],
        KEY,
        tmp_path,
        mailer=mailer,
        console_url="https://garrison.example:8443/",
    )
    notifier.notify([_finding(1)])
    (message,) = mailbox.messages
    assert message["To"] == "ops@example.com"
    assert message["Subject"].startswith("Garrison: [medium 5] SSH brute force (fast)")
    assert message["Message-ID"].startswith("<ntf_")
    body = message.get_payload()
    assert "https://garrison.example:8443/findings/fnd_" in body
    assert "What to do:" in body
    assert list(tmp_path.rglob("*.json")) == []


def test_mail_over_starttls_logs_in(tmp_path: Path, pki: CertificateAuthority) -> None:
    issued = pki.ensure_server("smtp-test", ["localhost"])
    server_tls = server_context(issued, pki.keyring, "smtp-test")
    box = Mailbox(host="localhost", tls_context=server_tls, require_starttls=True)
    try:
        client_tls = ssl.create_default_context(cafile=pki.cert_path)
        mailer = Mailer(
            f"smtp://alerts:s3cret%20pass@localhost:{box.port}", "g@example.com", context=client_tls
        )
        Notifier([Route("email", "ops@example.com")], KEY, tmp_path, mailer=mailer).notify(
            [_finding(1)]
        )
        assert box.logins == ["alerts"]
        assert len(box.messages) == 1
    finally:
        box.controller.stop()


def test_no_starttls_off_loopback_is_refused_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Mailbox(host="127.0.0.2", auth_require_tls=False)
    try:
        mailer = Mailer(f"smtp://127.0.0.2:{box.port}", "g@example.com")
        Notifier([Route("email", "ops@example.com")], KEY, tmp_path, mailer=mailer).notify(
            [_finding(1)]
        )
        assert "refusing to send in the clear" in caplog.text
        assert box.messages == []
        assert len(list(tmp_path.rglob("*.json"))) == 1
    finally:
        box.controller.stop()


def test_mail_waits_for_a_server_that_is_down(tmp_path: Path) -> None:
    box = Mailbox(auth_require_tls=False)
    port = box.port
    box.controller.stop()
    notifier = Notifier(
        [Route("email", "ops@example.com")],
        KEY,
        tmp_path,
        mailer=Mailer(f"smtp://127.0.0.1:{port}", "g@example.com"),
    )
    notifier.notify([_finding(1)])
    assert len(list(tmp_path.rglob("*.json"))) == 1
    again = Mailbox(auth_require_tls=False)
    try:
        notifier.mailer = Mailer(f"smtp://127.0.0.1:{again.port}", "g@example.com")
        notifier.flush()
        assert len(again.messages) == 1
        assert list(tmp_path.rglob("*.json")) == []
    finally:
        again.controller.stop()


def test_routes_parse_kind_severity_and_target() -> None:
    route = Route.parse("slack:7:https://hooks.example/T0/B0/x")
    assert (route.kind, route.min_severity, route.target) == (
        "slack",
        7.0,
        "https://hooks.example/T0/B0/x",
    )
    assert route.label == "slack at hooks.example"  # the secret path stays out of logs
    with pytest.raises(ConfigError, match="KIND:MIN_SEVERITY:TARGET"):
        Route.parse("email:ops@example.com")
    with pytest.raises(ConfigError, match="one e-mail address"):
        Route.parse("email:4:a@example.com;b@example.com")
    with pytest.raises(ConfigError, match="outside 1-10"):
        Route.parse("webhook:11:https://hooks.example/x")
    with pytest.raises(ConfigError, match="need an SMTP server"):
        Notifier([Route("email", "ops@example.com")], KEY, Path("/nonexistent"))


def test_settings_refuse_a_bad_route_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"notify_routes .*environment variable"):
        settings.load(environ={"GARRISON_NOTIFY_ROUTES": "pager:5:https://x.example/"})
    with pytest.raises(ConfigError, match="notify_smtp_url"):
        settings.load(environ={"GARRISON_NOTIFY_SMTP_URL": "mail.example.com"})
    shown = settings.as_dict(
        settings.load(environ={"GARRISON_NOTIFY_SMTP_URL": "smtps://u:hunter2@mail.example.com"})
    )
    assert shown["notify_smtp_url"] == "smtps://u:***@mail.example.com"
    routes = settings.load(
        environ={
            "GARRISON_NOTIFY_ROUTES": "slack:7:https://hooks.example/T0/B0/s3cret,email:4:a@b.c"
        }
    )
    assert settings.as_dict(routes)["notify_routes"] == [
        "slack:7:https://hooks.example/***",
        "email:4:a@b.c",
    ]
