"""Seeded sshd log lines for the shipping benches (failed and accepted logins, preauth closes)."""

from __future__ import annotations

import random

PREFIX = "Dec  1 10:{m:02d}:{s:02d} web-1 sshd[{pid}]: "
TEMPLATES = (
    PREFIX + "Failed password for invalid user {u} from 198.51.{a}.{b} port {port} ssh2",
    PREFIX + "Accepted publickey for deploy from 203.0.113.{b} port {port} ssh2: ED25519 SHA256:x",
    PREFIX + "Connection closed by authenticating user root 198.51.{a}.{b} port {port} [preauth]",
)


def sshd_line(rng: random.Random, i: int, second: int) -> str:
    """Line `i`, stamped `second` seconds after 10:00, with a newline."""
    return (
        rng.choice(TEMPLATES).format(
            m=second // 60 % 60,
            s=second % 60,
            pid=1000 + i % 5000,
            u=f"user{i % 97}",
            a=rng.randrange(256),
            b=rng.randrange(256),
            port=rng.randrange(1024, 65535),
        )
        + "\n"
    )
