"""Sign-in throttling per account and per source address, counted before the check.

Every password or second-factor attempt first records a failure row for the account and for
the source (IPv4 address, or IPv6 /64), then counts; only attempts within the limit are
checked, and a success removes its own rows. Parallel guesses therefore cannot exceed the limit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import Min
from django.utils import timezone

from garrison.core.errors import ThrottledError
from garrison.server.accounts.models import AuthFailure

WINDOW = dt.timedelta(minutes=15)
ACCOUNT_LIMIT = 5
SOURCE_LIMIT = 20


def source_key(ip: str | None) -> str:
    """The throttling key of a client address: the address itself, or its /64 for IPv6."""
    try:
        addr = ipaddress.ip_address(ip or "")
    except ValueError:
        return "unknown"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr.ipv4_mapped or addr) if isinstance(addr, ipaddress.IPv6Address) else str(addr)


def _serialize(checks: Sequence[tuple[str, str, int, str]]) -> None:
    """On PostgreSQL, hold a transaction lock per throttling key so that concurrent attempts
    (each in its own request transaction) are counted one after the other."""
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        return  # SQLite: the request transaction is BEGIN IMMEDIATE, already serialized
    with connection.cursor() as cursor:
        for scope, key, _, _ in sorted(checks):
            lock = int.from_bytes(
                hashlib.sha256(f"{scope}:{key}".encode()).digest()[:8], "big", signed=True
            )
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock])


@dataclass
class Attempt:
    """The rows an attempt recorded; `succeeded()` removes them."""

    ids: list[int]

    def succeeded(self) -> None:
        """Forget this attempt: it was not a failure."""
        AuthFailure.objects.filter(pk__in=self.ids).delete()


def _count(scope: str, key: str, since: dt.datetime) -> tuple[int, dt.datetime | None]:
    rows = AuthFailure.objects.filter(scope=scope, key=key, created_at__gte=since)
    agg = rows.aggregate(oldest=Min("created_at"))
    return rows.count(), agg["oldest"]


def begin(username: str, ip: str | None) -> Attempt:
    """Record an attempt for `username` from `ip`, or raise `ThrottledError` if over a limit."""
    now = timezone.now()
    since = now - WINDOW
    checks = [
        (AuthFailure.Scope.ACCOUNT, username.lower()[:64], ACCOUNT_LIMIT, "this account"),
        (AuthFailure.Scope.SOURCE, source_key(ip), SOURCE_LIMIT, "your network address"),
    ]
    _serialize(checks)
    AuthFailure.objects.filter(created_at__lt=since).delete()
    created = [AuthFailure.objects.create(scope=s, key=k, created_at=now) for s, k, _, _ in checks]
    attempt = Attempt([row.pk for row in created])
    for scope, key, limit, who in checks:
        count, oldest = _count(scope, key, since)
        if count > limit:
            attempt.succeeded()  # a refused attempt is not checked, so it does not count
            wait = (oldest or now) + WINDOW - now
            minutes = max(1, math.ceil(wait.total_seconds() / 60))
            raise ThrottledError(
                f"Too many failed sign-in attempts for {who}. "
                f"Wait {minutes} minute{'s' if minutes != 1 else ''} and try again, "
                "or ask an admin to reset your access.",
                retry_after=int(wait.total_seconds()) + 1,
            )
    return attempt


def clear_account(username: str) -> None:
    """Forget an account's failures (after an admin reset its access)."""
    AuthFailure.objects.filter(scope=AuthFailure.Scope.ACCOUNT, key=username.lower()).delete()
