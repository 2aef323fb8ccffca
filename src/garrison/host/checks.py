"""Health checks the agent runs: a systemd unit's state, a process, a TCP connect, an HTTP(S)
answer (status, body, latency), a TLS certificate's expiry, a command's exit status.

Each check returns a `Result` (healthy or not, in words, and how long it took) and never
raises: a check that cannot even be made is unhealthy, saying why. `Verdict` turns results
into a state with an N-of-M threshold, so that one lost packet is not an outage and a check
flapping around its limit does not flap the state.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import Final, Protocol

import psutil

from garrison.core.redact import redact_url
from garrison.core.urls import https_or_loopback
from garrison.host import commands

SYSTEMCTL: Final = shutil.which("systemctl") or "/usr/bin/systemctl"
BODY_LIMIT: Final = 1024 * 1024


@dataclass(frozen=True)
class Result:
    """One run of a check."""

    healthy: bool
    detail: str
    seconds: float


class Check(Protocol):
    """A health check: `run` never raises."""

    @property
    def name(self) -> str: ...

    @property
    def interval_s(self) -> float: ...

    @property
    def timeout_s(self) -> float: ...

    def run(self) -> Result: ...


def _timed(began: float, healthy: bool, detail: str) -> Result:
    return Result(healthy, detail, round(time.monotonic() - began, 4))


@dataclass(frozen=True)
class TCPCheck:
    """Something accepts connections on HOST:PORT."""

    name: str
    host: str
    port: int
    interval_s: float = 30.0
    timeout_s: float = 5.0

    def run(self) -> Result:
        began = time.monotonic()
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s):
                return _timed(began, True, f"{self.host}:{self.port} accepts connections")
        except OSError as exc:
            return _timed(began, False, f"{self.host}:{self.port}: {exc.strerror or exc}")


@dataclass(frozen=True)
class HTTPCheck:
    """A URL answers with `status`, its body holds `body_contains`, within `max_seconds`."""

    name: str
    url: str
    status: int = 200
    body_contains: str = ""
    max_seconds: float | None = None
    ca_file: str | None = None
    interval_s: float = 30.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not https_or_loopback(self.url):
            raise ValueError(
                f"{redact_url(self.url)!r}: health checks use https://, or http:// to loopback"
            )

    @property
    def shown(self) -> str:
        """The URL as results say it (without its password)."""
        return redact_url(self.url)

    def run(self) -> Result:
        began = time.monotonic()
        context = ssl.create_default_context(cafile=self.ca_file)
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s, context=context) as got:  # noqa: S310  # nosec B310  # https or loopback, checked
                code, body = got.status, got.read(BODY_LIMIT)
        except urllib.error.HTTPError as exc:
            code, body = exc.code, exc.read(BODY_LIMIT)
            exc.close()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return _timed(began, False, f"{self.shown}: {reason}")
        result = _timed(began, True, f"{self.shown}: {code}")
        if code != self.status:
            return Result(False, f"{self.shown}: status {code}, not {self.status}", result.seconds)
        if self.body_contains and self.body_contains.encode() not in body:
            return Result(
                False, f"{self.shown}: the body lacks {self.body_contains!r}", result.seconds
            )
        if self.max_seconds is not None and result.seconds > self.max_seconds:
            return Result(
                False,
                f"{self.shown}: {result.seconds:.3f} s, over {self.max_seconds} s",
                result.seconds,
            )
        return result


@dataclass(frozen=True)
class CertificateCheck:
    """The TLS certificate served on HOST:PORT is valid for at least `min_days` more."""

    name: str
    host: str
    port: int
    min_days: float = 14.0
    server_name: str = ""
    interval_s: float = 3600.0
    timeout_s: float = 10.0

    def run(self) -> Result:
        from cryptography import x509  # noqa: PLC0415

        began = time.monotonic()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the expiry is the question here, not the trust
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=self.timeout_s) as raw,
                context.wrap_socket(raw, server_hostname=self.server_name or self.host) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError) as exc:
            return _timed(began, False, f"{self.host}:{self.port}: {exc}")
        if der is None:
            return _timed(began, False, f"{self.host}:{self.port} sent no certificate")
        expires = x509.load_der_x509_certificate(der).not_valid_after_utc
        left = (expires - dt.datetime.now(dt.UTC)).total_seconds() / 86400
        detail = f"{self.host}:{self.port}: the certificate expires in {left:.1f} days"
        return _timed(began, left >= self.min_days, detail)


@dataclass(frozen=True)
class ProcessCheck:
    """A process named `process` runs."""

    name: str
    process: str
    interval_s: float = 30.0
    timeout_s: float = 5.0

    def run(self) -> Result:
        began = time.monotonic()
        count = sum(1 for p in psutil.process_iter(["name"]) if p.info["name"] == self.process)
        detail = f"{count} processes named {self.process}" if count else f"no {self.process} runs"
        return _timed(began, count > 0, detail)


@dataclass(frozen=True)
class CommandCheck:
    """A command exits 0 (run without a shell)."""

    name: str
    argv: tuple[str, ...]
    interval_s: float = 60.0
    timeout_s: float = 30.0

    def run(self) -> Result:
        began = time.monotonic()
        ran = commands.run(list(self.argv), self.timeout_s)
        if ran.code is None:
            return _timed(began, False, ran.said)
        return _timed(began, ran.ok, f"exit {ran.code}" + (f": {ran.said}" if ran.said else ""))


@dataclass(frozen=True)
class SystemdCheck:
    """A systemd unit is active."""

    name: str
    unit: str
    interval_s: float = 30.0
    timeout_s: float = 10.0

    def run(self) -> Result:
        began = time.monotonic()
        ran = commands.run([SYSTEMCTL, "is-active", self.unit], self.timeout_s)
        if ran.code is None:
            return _timed(began, False, ran.said)
        state = ran.said or "unknown"
        return _timed(began, state == "active", f"{self.unit} is {state}")


@dataclass
class Verdict:
    """A check's state from its last `of` results: down once `failures` of them failed, up
    again once `failures` of them in a row passed (hysteresis: no flapping on a borderline
    check). Starts up."""

    failures: int = 3
    of: int = 5
    healthy: bool = True
    _last: deque[bool] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if not 1 <= self.failures <= self.of:
            raise ValueError(f"N-of-M needs 1 <= N <= M, not {self.failures} of {self.of}")
        self._last = deque(maxlen=self.of)

    def reset(self) -> None:
        """Up, with no history (a remediation verified the check passes)."""
        self.healthy = True
        self._last.clear()

    def add(self, result: Result) -> bool:
        """Take one result; whether the state changed."""
        self._last.append(result.healthy)
        was = self.healthy
        if self.healthy and sum(not ok for ok in self._last) >= self.failures:
            self.healthy = False
        elif not self.healthy:
            recent = list(self._last)[-self.failures :]
            if len(recent) == self.failures and all(recent):
                self.healthy = True
        return self.healthy != was
