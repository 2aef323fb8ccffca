"""Shipping batches from a host to the collector over mTLS, on a kept-alive connection."""

from __future__ import annotations

import http.client
import json
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import zstandard

from garrison import __version__
from garrison.core.errors import StoreError, UsageError

BACKOFF_MAX = 30.0
USER_AGENT = f"garrison-agent/{__version__}"
_RNG = random.Random()  # noqa: S311  # nosec B311  # jitter, not cryptography


class ShipError(StoreError):
    """The collector did not take a batch (unreachable, refusing, or overloaded); `status` is
    its HTTP answer (0 when it could not be reached)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def refused(self) -> bool:
        """The collector will never take this request as it is (a 4xx but 408 and 429)."""
        return 400 <= self.status < 500 and self.status not in {408, 429}


def encode_batch(
    compress: Callable[[bytes], bytes], batch_id: str, stream: str, events: list[dict[str, Any]]
) -> bytes:
    """A batch's request body, compressed with `compress` (one compressor per thread)."""
    return compress(json.dumps({"batch_id": batch_id, "stream": stream, "events": events}).encode())


@dataclass
class Shipper:
    """Sends one batch per request; a batch id makes retries safe (the collector de-duplicates).

    Not thread-safe: the agent's loop is its only user.
    """

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
        self._conn: http.client.HTTPSConnection | None = None

    def encode_batch(self, batch_id: str, stream: str, events: list[dict[str, Any]]) -> bytes:
        """The compressed request body of a batch (what the spool keeps)."""
        return encode_batch(self._compress, batch_id, stream, events)

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
        """One HTTPS request to the collector; anything but 200 raises `ShipError`.

        The connection is kept alive between requests. When a kept connection turns out to be
        closed by the collector (idle timeout, restart) the request is sent once more on a new
        one: safe, since a batch id is stored once and a renewal only issues another cert.
        """
        headers = {"User-Agent": USER_AGENT, **(headers or {})}
        kept = self._conn is not None
        try:
            response, data = self._exchange(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            if not kept:
                raise ShipError(f"collector {self.collector_url} unreachable: {exc}") from exc
            try:
                response, data = self._exchange(method, path, body, headers)
            except (OSError, http.client.HTTPException) as again:
                raise ShipError(f"collector {self.collector_url} unreachable: {again}") from again
        try:
            parsed: dict[str, Any] = json.loads(data) if data else {}
        except ValueError:
            parsed = {}
        if response.status != 200:
            error = parsed.get("error", {})
            message = error.get("message") if isinstance(error, dict) else None
            raise ShipError(
                f"collector answered {response.status}: {message or data[:200]!r}",
                status=response.status,
            )
        return parsed

    def _exchange(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn = self._conn or http.client.HTTPSConnection(
            self._host, self._port, context=self.context, timeout=self.timeout
        )
        self._conn = None
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._conn = conn
        return response, data

    def close(self) -> None:
        """Close the kept-alive connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def jittered(delay: float, rng: random.Random = _RNG) -> float:
    """A wait between half of `delay` and all of it, so that agents do not retry in step."""
    return delay / 2 + rng.uniform(0, delay / 2)
