"""The fleet-wide limit on remediation: while a zone's instances of a service are being
remediated, no other zone's may be.

An agent asks for a lease on its (service, zone) before acting and gives it back after its
verification; a lease expires on its own after its time, so an agent that dies holding one
blocks the other zones for 15 minutes at most (`MAX_TTL_S`). Several hosts of the same zone
may hold leases at once. Leases live in the collector's memory: after a collector restart
the zones start free.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_TTL_S = 900.0
MAX_NAME = 200


@dataclass
class Leases:
    """Who is remediating which service in which zone, until when."""

    clock: Callable[[], float] = time.time
    _held: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, service: str, zone: str, host: str, ttl_s: float) -> tuple[bool, str]:
        """Grant `host` a lease for its instance of `service` in `zone`, unless another zone
        of the service holds one; (granted, why not)."""
        if not 0 < len(service) <= MAX_NAME or not 0 < len(zone) <= MAX_NAME:
            raise ValueError(f"service and zone are 1 to {MAX_NAME} characters")
        now = self.clock()
        with self._lock:
            self._held = {k: until for k, until in self._held.items() if until > now}
            for (held_service, held_zone, holder), until in self._held.items():
                if held_service == service and held_zone != zone:
                    left = until - now
                    return False, (
                        f"{service} in {held_zone} is being remediated by {holder} "
                        f"(lease for {left:.0f} s more); one zone at a time"
                    )
            self._held[(service, zone, host)] = now + min(max(ttl_s, 1.0), MAX_TTL_S)
        return True, ""

    def release(self, service: str, zone: str, host: str) -> None:
        """`host` is done with `service` in `zone`."""
        with self._lock:
            self._held.pop((service, zone, host), None)

    def held(self) -> list[dict[str, object]]:
        """The leases in force."""
        now = self.clock()
        with self._lock:
            return [
                {"service": s, "zone": z, "host": h, "seconds_left": round(u - now, 1)}
                for (s, z, h), u in self._held.items()
                if u > now
            ]
