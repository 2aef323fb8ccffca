"""Telling people about new findings: signed webhooks, Slack-compatible webhooks and e-mail.

Each route has a kind, a target (URL or address) and a minimum severity, so critical findings
can page one channel while medium ones go to a mailbox. A new finding at or above a route's
severity becomes one message; past `max_per_minute` messages a minute on a route, further
findings are held and go out as one digest when the minute is over, so a storm cannot flood
anyone.

Messages are spooled on disk before delivery (one file each, written atomically) and removed
only once the receiver accepted them (HTTP 2xx, or the SMTP server took the mail); a failed
delivery stays spooled, is logged, and is tried again on the next flush. Webhook bodies are
signed: ``X-Garrison-Signature: sha256=HEX`` is the HMAC-SHA256 of the body under the data
directory's notification key (`garrison detect notify-key` prints it: the key is that text),
and ``X-Garrison-Delivery`` names the message, so a receiver can check the sender and drop a
repeat (mails carry the same name in their ``Message-ID``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import smtplib
import ssl
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import msgspec

from garrison.core.errors import ConfigError
from garrison.core.redact import redact_url
from garrison.core.urls import LOOPBACK, https_or_loopback

log = logging.getLogger("garrison.detect")

KINDS = ("webhook", "slack", "email")
WINDOW_SECONDS = 60.0


def _check_url(url: str) -> None:
    if not https_or_loopback(url):
        raise ConfigError(f"notification URL {url!r} must be https:// (http:// only on loopback)")


def smtp_parts(url: str) -> urllib.parse.SplitResult:
    """The parts of an SMTP server URL, refused unless ``smtps://``, or ``smtp://`` (with
    STARTTLS) and a host name."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"smtps", "smtp"} or not parts.hostname:
        raise ConfigError(
            f"SMTP server {redact_url(url)!r} is not smtps://HOST[:PORT] or smtp://HOST[:PORT]"
        )
    return parts


@dataclass(frozen=True)
class Route:
    """Where findings of at least `min_severity` go: a webhook or Slack URL, or an address."""

    kind: str
    target: str
    min_severity: float = 4.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown notification kind {self.kind!r}; use one of {KINDS}")
        if not 1 <= self.min_severity <= 10:
            raise ConfigError(f"notification severity {self.min_severity:g} is outside 1-10")
        if self.kind == "email":
            if "@" not in self.target or any(c in self.target for c in " ,;<>\r\n"):
                raise ConfigError(f"{self.target!r} is not one e-mail address")
        else:
            _check_url(self.target)

    @classmethod
    def parse(cls, spec: str) -> Route:
        """A route from ``KIND:MIN_SEVERITY:TARGET`` (``slack:7:https://hooks...``)."""
        kind, _, rest = spec.partition(":")
        severity, _, target = rest.partition(":")
        try:
            minimum = float(severity)
        except ValueError:
            raise ConfigError(
                f"notification route {redact_url(spec)!r} is not KIND:MIN_SEVERITY:TARGET",
                hint="for example email:4:ops@example.com or slack:7:https://hooks.slack.com/...",
            ) from None
        return cls(kind, target, minimum)

    @property
    def name(self) -> str:
        """A short stable name for the route's spool."""
        return hashlib.sha256(f"{self.kind} {self.target}".encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """How logs name the route (a URL's path can be its secret: only its host is shown)."""
        if self.kind == "email":
            return f"email to {self.target}"
        return f"{self.kind} at {urllib.parse.urlsplit(self.target).hostname}"


class Mailer:
    """Sends mail through one SMTP server: ``smtps://`` (TLS from the start) or ``smtp://``
    (STARTTLS, refused when the server does not offer it, except on loopback), with the URL's
    user and password when it has them."""

    def __init__(
        self,
        url: str,
        sender: str,
        *,
        context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.parts = smtp_parts(url)
        self.url = redact_url(url)
        self.sender = sender
        self.context = context or ssl.create_default_context()
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.timeout = timeout

    def send(self, to: str, subject: str, text: str, delivery: str) -> None:
        """Deliver one message; raises `OSError` (or `smtplib.SMTPException`) when not taken."""
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{delivery}@garrison>"
        message.set_content(text)
        host, parts = self.parts.hostname or "", self.parts
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, parts.port or 465, timeout=self.timeout, context=self.context
            )
        else:
            client = smtplib.SMTP(host, parts.port or 587, timeout=self.timeout)
        with client:
            if parts.scheme == "smtp":
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=self.context)
                    client.ehlo()
                elif host not in LOOPBACK:
                    raise smtplib.SMTPNotSupportedError(
                        f"{host} does not offer STARTTLS; refusing to send in the clear"
                    )
            if parts.username:
                client.login(
                    urllib.parse.unquote(parts.username),
                    urllib.parse.unquote(parts.password or ""),
                )
            client.send_message(message)


def _line(finding: dict[str, Any]) -> str:
    actor = finding.get("src_ip") or finding.get("src_host") or finding.get("user") or "-"
    where = f" on {finding['host']}" if finding.get("host") else ""
    return (
        f"[{finding['severity_label']} {finding['severity']:g}] {finding['title']}: {actor}{where}"
        f" ({finding['count']} events since {finding['first_seen']})"
    )


def _mail_text(text: str, findings: list[dict[str, Any]], console: str) -> str:
    parts = [text, ""]
    for finding in findings[:20]:
        parts += [_line(finding), finding.get("description", ""), ""]
        if finding.get("remediation"):
            parts += [f"What to do: {finding['remediation']}", ""]
        if console and finding.get("id"):
            parts += [f"{console}/findings/{finding['id']}/", ""]
    return "\n".join(parts).strip() + "\n"


class Notifier:
    """Routes new findings to their receivers, rate-limited, spooled, signed."""

    def __init__(
        self,
        routes: list[Route],
        key: bytes,
        spool: Path,
        *,
        mailer: Mailer | None = None,
        console_url: str = "",
        max_per_minute: int = 10,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mailer is None and any(r.kind == "email" for r in routes):
            raise ConfigError(
                "e-mail notification routes need an SMTP server", hint="set notify_smtp_url"
            )
        self.routes = routes
        self.key = key
        self.spool = spool
        self.mailer = mailer
        self.console_url = console_url.rstrip("/")
        self.max_per_minute = max_per_minute
        self.timeout = timeout
        self.clock = clock
        self._sent: dict[str, list[float]] = {r.name: [] for r in routes}
        self._held: dict[str, list[dict[str, Any]]] = {r.name: [] for r in routes}
        self._held_since: dict[str, float] = {}

    def notify(self, findings: list[dict[str, Any]]) -> None:
        """Queue a message per new finding (or hold it for the digest), then deliver."""
        now = self.clock()
        for route in self.routes:
            for finding in findings:
                if float(finding["severity"]) < route.min_severity:
                    continue
                recent = [t for t in self._sent[route.name] if now - t < WINDOW_SECONDS]
                self._sent[route.name] = recent
                if len(recent) < self.max_per_minute:
                    recent.append(now)
                    self._queue(route, _line(finding), [finding])
                else:
                    self._held[route.name].append(finding)
                    self._held_since.setdefault(route.name, now)
        self.flush()

    def flush(self) -> None:
        """Send digests whose minute is over, then every spooled message, oldest first."""
        now = self.clock()
        for route in self.routes:
            held = self._held[route.name]
            since = self._held_since.get(route.name)
            if held and since is not None and now - since >= WINDOW_SECONDS:
                text = f"{len(held)} more findings in the last minute:\n" + "\n".join(
                    _line(f) for f in held[:20]
                )
                self._queue(route, text, held)
                self._held[route.name] = []
                del self._held_since[route.name]
            self._deliver(route)

    def _queue(self, route: Route, text: str, findings: list[dict[str, Any]]) -> None:
        delivery = f"ntf_{uuid.uuid4().hex}"
        if route.kind == "slack":
            body: dict[str, Any] = {"text": text}
        elif route.kind == "email":
            subject = text.splitlines()[0]
            mail = _mail_text(text, findings, self.console_url)
            body = {"subject": f"Garrison: {subject}"[:200], "text": mail}
        else:
            body = {"delivery": delivery, "text": text, "findings": findings}
        folder = self.spool / route.name
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{delivery}.json"
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(msgspec.json.encode(body))
        os.replace(tmp, folder / name)

    def _deliver(self, route: Route) -> None:
        folder = self.spool / route.name
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            delivery = path.stem.split("-", 1)[1]
            try:
                if route.kind == "email" and self.mailer is not None:  # None: refused above
                    message = msgspec.json.decode(path.read_bytes())
                    self.mailer.send(route.target, message["subject"], message["text"], delivery)
                else:
                    self._post(route, path.read_bytes(), delivery)
            except (OSError, smtplib.SMTPException) as exc:
                log.error("notify: %s failed: %s; kept for the next try", route.label, exc)
                return
            path.unlink()

    def _post(self, route: Route, body: bytes, delivery: str) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "garrison-notify"}
        if route.kind == "webhook":
            digest = hmac.new(self.key, body, hashlib.sha256).hexdigest()
            headers |= {
                "X-Garrison-Signature": f"sha256={digest}",
                "X-Garrison-Delivery": delivery,
            }
        request = urllib.request.Request(route.target, data=body, headers=headers, method="POST")  # noqa: S310  # scheme checked
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310  # nosec B310
            if not 200 <= response.status < 300:
                raise OSError(f"answered HTTP {response.status}")
