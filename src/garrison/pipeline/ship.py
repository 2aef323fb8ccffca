"""Shipping batches from a host to the collector over mTLS, with retries, backoff and jitter."""

from __future__ import annotations

import http.client
import json
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import zstandard

from garrison.core.errors import StoreError, UsageError

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0


class ShipError(StoreError):
    """The collector did not take a batch (unreachable, refusing, or overloaded)."""


@dataclass
class Shipper:
    """Sends one batch per request; a batch id makes retries safe (the collector de-duplicates)."""

    collector_url: str
    context: ssl.SSLContext
    timeout: float = 10.0
    _compress: Callable[[bytes], bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.collector_url)
        if parts.scheme != "https" or not parts.hostname:
            raise UsageError(
                f"the collector URL must be https://HOST:PORT, not {self.collector_url!r}"
            )
        self._host, self._port = parts.hostname, parts.port or 443
        self._compress = zstandard.ZstdCompressor(level=3).compress

    def encode_batch(self, batch_id: str, stream: str, events: list[dict[str, Any]]) -> bytes:
        """The compressed request body of a batch (what the spool keeps)."""
        body = {"batch_id": batch_id, "stream": stream, "events": events}
        return self._compress(json.dumps(body).encode())

    def send(self, payload: bytes) -> dict[str, Any]:
        """Deliver one encoded batch; returns the collector's acknowledgement."""
        return self.request(
            "POST",
            "/v1/batches",
            payload,
            {"Content-Type": "application/json", "Content-Encoding": "zstd"},
        )

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One HTTPS request to the collector; anything but 200 raises `ShipError`."""
        conn = http.client.HTTPSConnection(
            self._host, self._port, context=self.context, timeout=self.timeout
        )
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ShipError(f"collector {self.collector_url} unreachable: {exc}") from exc
        finally:
            conn.close()
        try:
            parsed: dict[str, Any] = json.loads(data) if data else {}
        except ValueError:
            parsed = {}
        if response.status != 200:
            error = parsed.get("error", {})
            message = error.get("message") if isinstance(error, dict) else None
            raise ShipError(f"collector answered {response.status}: {message or data[:200]!r}")
        return parsed


def with_backoff(
    attempt: Callable[[], Any],
    *,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Any:
    """Call `attempt` until it succeeds or `deadline` (monotonic) passes; full-jitter backoff."""
    rng = rng or random.Random()  # noqa: S311  # nosec B311  # jitter, not cryptography
    delay = BACKOFF_START
    while True:
        try:
            return attempt()
        except ShipError:
            if time.monotonic() + delay > deadline:
                raise
            sleep(rng.uniform(0, delay))
            delay = min(delay * 2, BACKOFF_MAX)
