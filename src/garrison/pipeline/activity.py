"""What each host sent lately, for the fleet view: last seen, events/s per stream, agent, cert.

The collector keeps one-minute buckets for the last `WINDOW_MINUTES` minutes per host and
stream, and the agent version (its User-Agent), certificate expiry and source address of each
host's latest request, and publishes a snapshot file the control plane reads (no database on
the collector): renewals happen at the collector, so this is where the current expiry is known.
A host whose certificate is presented from a new address is reported by `record`.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import defaultdict
from pathlib import Path

from garrison.core.files import replace_private

WINDOW_MINUTES = 5
AGENT_MAX = 64


class HostActivity:
    """Thread-safe counters of recent traffic per host and stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_seen: dict[str, float] = {}
        self._buckets: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
        self._agents: dict[str, str] = {}
        self._cert_not_after: dict[str, dt.datetime] = {}
        self._addresses: dict[str, str] = {}

    def remember_addresses(self, snapshot: dict[str, dict[str, object]]) -> None:
        """Take the hosts' addresses from a published snapshot (a restarted collector)."""
        with self._lock:
            for host, facts in snapshot.items():
                if isinstance(facts, dict) and isinstance(facts.get("address"), str):
                    self._addresses.setdefault(host, str(facts["address"]))

    def record(
        self,
        host: str,
        stream: str | None = None,
        events: int = 0,
        *,
        agent: str | None = None,
        cert_not_after: dt.datetime | None = None,
        address: str | None = None,
    ) -> str | None:
        """Note that `host` was seen now (with its agent, certificate expiry and address, when
        given), having sent `events` to `stream`. Returns the host's previous address when this
        one differs from it (None the first time and while it stays the same)."""
        now = time.time()
        minute = int(now // 60)
        moved = None
        with self._lock:
            self._last_seen[host] = now
            if address is not None:
                previous = self._addresses.get(host)
                if previous is not None and previous != address:
                    moved = previous
                self._addresses[host] = address
            if agent:
                self._agents[host] = "".join(c for c in agent[:AGENT_MAX] if c.isprintable())
            if cert_not_after is not None:
                self._cert_not_after[host] = cert_not_after
            if stream is not None:
                buckets = self._buckets[(host, stream)]
                buckets[minute] = buckets.get(minute, 0) + events
                for old in [m for m in buckets if m <= minute - WINDOW_MINUTES]:
                    del buckets[old]
        return moved

    def snapshot(self, now: float | None = None) -> dict[str, dict[str, object]]:
        """Per host: ISO last seen, events/s per stream over the window, agent, cert expiry,
        source address."""
        now = now or time.time()
        floor = int(now // 60) - WINDOW_MINUTES
        rates: dict[str, dict[str, float]] = defaultdict(dict)
        with self._lock:
            for (host, stream), buckets in self._buckets.items():
                total = sum(n for m, n in buckets.items() if m > floor)
                rates[host][stream] = round(total / (WINDOW_MINUTES * 60), 2)
            return {
                host: {
                    "last_seen": dt.datetime.fromtimestamp(seen, dt.UTC).isoformat(
                        timespec="seconds"
                    ),
                    "events_per_second": rates.get(host, {}),
                    "agent": self._agents.get(host, ""),
                    "cert_not_after": (
                        self._cert_not_after[host].isoformat(timespec="seconds")
                        if host in self._cert_not_after
                        else None
                    ),
                    "address": self._addresses.get(host),
                }
                for host, seen in self._last_seen.items()
            }

    def publish(self, path: Path) -> None:
        """Write the snapshot atomically for the control plane."""
        replace_private(path, json.dumps(self.snapshot(), sort_keys=True).encode())


def read(path: Path) -> dict[str, dict[str, object]]:
    """The last published snapshot ({} before the collector ran)."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
