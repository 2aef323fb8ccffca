"""What hosts' sshd must trust, as the collector hands it to agents: the user CA keys, the
KRL, which principals may log in as which account, and a host certificate on request."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.errors import ConfigError
from garrison.ssh.ca import Issued, SSHAuthority


def parse_principals(specs: list[str]) -> dict[str, list[str]]:
    """``ACCOUNT:PRINCIPAL`` entries (the `ssh_principals` setting) as account -> principals."""
    found: dict[str, list[str]] = {}
    for spec in specs:
        account, _, principal = spec.partition(":")
        if not account or not principal:
            raise ConfigError(
                f"ssh_principals entry {spec!r} is not ACCOUNT:PRINCIPAL",
                hint="for example root:role-admin or deploy:role-developer",
            )
        found.setdefault(account, []).append(principal)
    return found


@dataclass(frozen=True)
class HostTrust:
    """The collector's SSH service for agents."""

    authority: SSHAuthority
    krl: Path
    principals: dict[str, list[str]]
    cert_days: int

    def bundle(self) -> dict[str, Any]:
        """What every host's sshd trusts (the KRL empty until something is revoked)."""
        krl = self.krl.read_bytes() if self.krl.exists() else b""
        return {
            "user_ca": self.authority.trusted("user"),
            "krl": base64.b64encode(krl).decode(),
            "principals": self.principals,
        }

    def host_certificate(self, host: str, public_key: str) -> Issued:
        """A host certificate for `host`'s key, named by its certified host name."""
        return self.authority.sign(
            "host",
            public_key,
            serial=secrets.randbits(63) or 1,
            key_id=f"host {host}",
            principals=[host],
            valid_for=dt.timedelta(days=self.cert_days),
        )
