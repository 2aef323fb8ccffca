"""The one registry of long-running roles; `garrison up` starts every role listed here."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    """A long-running Garrison process, started as `garrison <command>`."""

    name: str
    description: str
    command: tuple[str, ...]

    def argv(self) -> list[str]:
        """The command line that starts this role with the current interpreter."""
        return [sys.executable, "-m", "garrison", *self.command]


ROLES: tuple[Role, ...] = (
    Role("server", "control plane: console and API over HTTPS", ("server",)),
    Role("store", "log store maintenance: seal, sign hourly, retention", ("store", "serve")),
    Role("collector", "agents' batches over mTLS into the log store", ("collector",)),
    Role("agent", "this machine's own logs, shipped to the collector", ("agent", "run")),
    Role("detector", "threat detection over the log store, into findings", ("detector",)),
    Role("monitor", "fleet health: metrics history, zones, alerts, into findings", ("monitor",)),
)
