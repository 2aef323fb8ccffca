"""Which URLs Garrison sends data to: https, or plain http only to this machine."""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def https_or_loopback(url: str) -> bool:
    """Whether `url` is https://, or http:// to a loopback host."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)
