"""Parser throughput: seeded sshd, nginx access/error and jsonl corpora, lines per second.

Run: .venv/bin/python bench/parse_bench.py [lines-per-format]
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time

from garrison.events.parsers import parse_lines

REF = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return f"2001:db8::{rng.randrange(1, 0xFFFF):x}"
    return f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def sshd_lines(n: int, seed: int = 7) -> list[str]:
    """A realistic mix: brute force failures, invalid users, preauth closes, a few successes."""
    rng = random.Random(seed)
    attackers = [_ip(rng) for _ in range(500)]
    users = ["root", "admin", "oracle", "test", "ubuntu", "git", "postgres"]
    out = []
    for i in range(n):
        ip = rng.choice(attackers)
        stamp = f"Nov {1 + i * 30 // n:2d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"
        pid = 1000 + i % 5000
        user = rng.choice(users)
        kind = rng.random()
        port = rng.randrange(65535)
        if kind < 0.4:
            msg = f"Failed password for invalid user {user} from {ip} port {port} ssh2"
        elif kind < 0.6:
            msg = f"Invalid user {user} from {ip} port {port}"
        elif kind < 0.8:
            msg = f"Connection closed by invalid user {user} {ip} port 4242 [preauth]"
        elif kind < 0.9:
            msg = (
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
                f"ruser= rhost={ip}  user={user}"
            )
        elif kind < 0.97:
            msg = f"Received disconnect from {ip} port 4242:11: Bye Bye [preauth]"
        else:
            msg = f"Accepted publickey for {user} from {ip} port 22 ssh2: ED25519 SHA256:abc"
        out.append(f"{stamp} bastion sshd[{pid}]: {msg}")
    return out


def nginx_lines(n: int, seed: int = 8) -> list[str]:
    """Mostly combined access lines, some error-log lines (limit_req, basic auth)."""
    rng = random.Random(seed)
    clients = [_ip(rng) for _ in range(2000)]
    paths = ["/", "/index.html", "/wp-login.php", "/api/v1/items?id=%2F..%2F", "/.env"]
    out = []
    for i in range(n):
        ip = rng.choice(clients)
        if rng.random() < 0.9:
            out.append(
                f"{ip} - - [01/Dec/2026:{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d} +0000] "
                f'"GET {rng.choice(paths)} HTTP/1.1" {rng.choice((200, 200, 301, 404, 403))} '
                f'{rng.randrange(10000)} "-" "Mozilla/5.0 (X11; Linux x86_64)"'
            )
        else:
            out.append(
                f"2026/12/01 {i % 24:02d}:{i % 60:02d}:00 [error] 12#12: *{i} limiting requests, "
                f'excess: 1.5 by zone "one", client: {ip}, server: example.com, '
                f'request: "GET / HTTP/1.1", host: "example.com"'
            )
    return out


def jsonl_lines(n: int) -> list[str]:
    """Small JSON objects."""
    return [f'{{"time":"2026-12-01T00:00:00Z","n":{i},"msg":"hello"}}' for i in range(n)]


def measure(format_: str, lines: list[str]) -> float:
    """Best of three runs, lines per second."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _event in parse_lines(format_, lines, reference_time=REF):
            pass
        best = min(best, time.perf_counter() - start)
    return len(lines) / best


def main() -> None:
    """Print lines/s per format."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    for format_, lines in (
        ("sshd", sshd_lines(n)),
        ("nginx", nginx_lines(n)),
        ("jsonl", jsonl_lines(n)),
    ):
        print(f"{format_:6} {measure(format_, lines):>12,.0f} lines/s  ({n:,} lines, 1 core)")


if __name__ == "__main__":
    main()
