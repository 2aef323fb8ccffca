"""The agent's side of the fleet-wide remediation limit: leases asked of the collector."""

from __future__ import annotations

import json
from typing import Any

from garrison.agent.identity import Identity
from garrison.pipeline.ship import Shipper


class CollectorCoordinator:
    """Asks the collector for a lease on (service, zone) before remediating, gives it back
    after. A connection of its own per request (the monitor's thread, the current
    certificate): leases are rare."""

    def __init__(self, collector_url: str, identity: Identity) -> None:
        self.collector_url = collector_url
        self.identity = identity

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        shipper = Shipper(self.collector_url, self.identity.context())
        try:
            return shipper.request(
                "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
        finally:
            shipper.close()

    def acquire(self, service: str, zone: str, ttl_s: float) -> tuple[bool, str]:
        """Whether the collector grants the lease; otherwise why not."""
        reply = self._post("/v1/leases", {"service": service, "zone": zone, "ttl_s": ttl_s})
        return bool(reply.get("granted")), str(reply.get("reason", ""))

    def release(self, service: str, zone: str) -> None:
        """Give the lease back."""
        self._post("/v1/leases/release", {"service": service, "zone": zone})
