"""The agent's ``/metrics``: this host's metrics in Prometheus's text format, on loopback
only (it has no authentication; a Prometheus on the same host, or a tunnel, scrapes it)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from garrison.core.errors import ConfigError
from garrison.host.exposition import registry, render
from garrison.host.metrics import Sampler
from garrison.host.monitor import HostMonitor


def parse_listen(listen: str) -> tuple[str, int]:
    """(address, port) of ``ADDRESS:PORT`` (``[::1]:9108`` for IPv6), loopback only."""
    address, _, port = listen.rpartition(":")
    address = address.strip("[]")
    try:
        loopback = ipaddress.ip_address(address).is_loopback
        number = int(port)
    except ValueError:
        raise ConfigError(f"agent_metrics_listen {listen!r} is not ADDRESS:PORT") from None
    if not loopback:
        raise ConfigError(
            f"agent_metrics_listen {listen!r} is not a loopback address",
            hint="/metrics has no authentication: serve it on 127.0.0.1 or ::1",
        )
    return address, number


class _Handler(BaseHTTPRequestHandler):
    server: _MetricsServer

    def do_GET(self) -> None:  # http.server's name
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404, "only /metrics is here")
            return
        body = render(self.server.metrics)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # http.server's name
        """Scrapes are not logged (every 15 s, forever)."""


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    metrics: CollectorRegistry


class _MetricsServer6(_MetricsServer):
    address_family = socket.AF_INET6


def serve(
    listen: str, monitor: HostMonitor | None = None
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start serving ``/metrics`` on `listen` in a thread; (the server, its thread). With the
    agent's `monitor`, its services, checks and firing alerts are there too."""
    address, port = parse_listen(listen)
    kind = _MetricsServer6 if ":" in address else _MetricsServer
    server = kind((address, port), _Handler)
    server.metrics = registry(Sampler(), monitor)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread
