"""What the collector's listeners share: accept, wrap in mTLS, handshake in the worker thread."""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

log = logging.getLogger("garrison.collector")

HANDSHAKE_SECONDS = 10


class MTLSServerMixin:
    """For a `socketserver` server: TLS with client certificates, one bounded handshake each.

    The handshake runs in the connection's own thread (never in the accept loop), so a slow
    or silent client cannot stall the listener.
    """

    socket: Any  # the listening socket socketserver creates
    tls_name = "collector"

    def tls_context(self) -> ssl.SSLContext:
        """The mTLS server context (a method, so a live certificate reload is picked up)."""
        raise NotImplementedError

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection and wrap it; the handshake comes later, in its thread."""
        sock, addr = self.socket.accept()
        try:
            wrapped = self.tls_context().wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        except (OSError, ValueError):
            sock.close()
            raise
        return wrapped, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Complete the handshake within `HANDSHAKE_SECONDS`, then serve the connection."""
        request.settimeout(HANDSHAKE_SECONDS)
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.info("%s: TLS handshake with %s failed: %s", self.tls_name, client_address, exc)
            return
        super().finish_request(request, client_address)  # type: ignore[misc]  # socketserver's
