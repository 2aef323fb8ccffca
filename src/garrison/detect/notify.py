"""Telling people about new findings: signed webhooks and Slack-compatible webhooks.

Each route has a URL, a kind and a minimum severity. A new finding at or above it becomes one
message; past `max_per_minute` messages a minute on a route, further findings are held and go
out as one digest when the minute is over, so a storm cannot flood anyone.

Messages are spooled on disk before delivery (one file each, written atomically) and removed
only once the receiver answered 2xx; a failed delivery stays spooled, is logged, and is tried
again on the next flush. Webhook bodies are signed: ``X-Garrison-Signature: sha256=HEX`` is
the HMAC-SHA256 of the body under the data directory's notification key (`garrison detect
notify-key` prints it: the key is that text), and ``X-Garrison-Delivery`` names the message, so
a receiver can check the sender and drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from garrison.core.errors import ConfigError

log = logging.getLogger("garrison.detect")

KINDS = ("webhook", "slack")
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Route:
    """Where findings of at least `min_severity` go, and in which shape."""

    kind: str
    url: str
    min_severity: float = 4.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown notification kind {self.kind!r}; use one of {KINDS}")
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme != "https" and parts.hostname not in {"127.0.0.1", "::1", "localhost"}:
            raise ConfigError(f"notification URL {self.url!r} must be https:// (or loopback)")

    @property
    def name(self) -> str:
        """A short stable name for the route's spool."""
        return hashlib.sha256(f"{self.kind} {self.url}".encode()).hexdigest()[:12]


def _line(finding: dict[str, Any]) -> str:
    actor = finding.get("src_ip") or finding.get("src_host") or finding.get("user") or "-"
    where = f" on {finding['host']}" if finding.get("host") else ""
    return (
        f"[{finding['severity_label']} {finding['severity']:g}] {finding['title']}: {actor}{where}"
        f" ({finding['count']} events since {finding['first_seen']})"
    )


class Notifier:
    """Routes new findings to their receivers, rate-limited, spooled, signed."""

    def __init__(
        self,
        routes: list[Route],
        key: bytes,
        spool: Path,
        *,
        max_per_minute: int = 10,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.routes = routes
        self.key = key
        self.spool = spool
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
            body = path.read_bytes()
            delivery = path.stem.split("-", 1)[1]
            headers = {"Content-Type": "application/json", "User-Agent": "garrison-notify"}
            if route.kind == "webhook":
                digest = hmac.new(self.key, body, hashlib.sha256).hexdigest()
                headers |= {
                    "X-Garrison-Signature": f"sha256={digest}",
                    "X-Garrison-Delivery": delivery,
                }
            request = urllib.request.Request(route.url, data=body, headers=headers, method="POST")  # noqa: S310  # scheme checked
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310  # nosec B310
                    ok = 200 <= response.status < 300
            except OSError as exc:
                log.error(
                    "notify: %s %s failed: %s; kept for the next try", route.kind, route.url, exc
                )
                return
            if not ok:
                log.error(
                    "notify: %s answered %s; kept for the next try", route.url, response.status
                )
                return
            path.unlink()
