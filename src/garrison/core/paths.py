"""Where things live inside the data directory, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    """The layout of a Garrison data directory (embedded default: everything lives here)."""

    root: Path

    @property
    def keys(self) -> Path:
        """Key material: the key-encryption key and encrypted private keys (0700)."""
        return self.root / "keys"

    @property
    def kek(self) -> Path:
        """The key-encryption key file (0600); never leaves this host."""
        return self.keys / "kek"

    @property
    def pki(self) -> Path:
        """The internal CA and issued certificates."""
        return self.root / "pki"

    @property
    def ssh(self) -> Path:
        """The SSH user and host CAs (encrypted keys) and the published KRL."""
        return self.root / "ssh"

    @property
    def ssh_krl(self) -> Path:
        """The key revocation list of user certificates (OpenSSH's KRL format), for hosts."""
        return self.ssh / "revoked.krl"

    @property
    def logstore(self) -> Path:
        """The dedicated log store (streams, segments, digests)."""
        return self.root / "logstore"

    @property
    def digest_key(self) -> Path:
        """The log store's Ed25519 signing key (PEM-encrypted); its public half sits beside it."""
        return self.keys / "logstore-ed25519.pem"

    @property
    def revocations(self) -> Path:
        """Revoked host names and certificate serials, read by the collector."""
        return self.pki / "revoked-hosts.json"

    @property
    def activity(self) -> Path:
        """What each host sent lately, published by the collector for the fleet view."""
        return self.root / "fleet-activity.json"

    @property
    def detector_state(self) -> Path:
        """The detector's read position in every stream and its engine state (one file)."""
        return self.root / "detector" / "state.json"

    @property
    def monitor_state(self) -> Path:
        """The monitor's read positions and open episodes (one file)."""
        return self.root / "monitor" / "state.json"

    @property
    def notify_spool(self) -> Path:
        """Notifications waiting for their receiver."""
        return self.root / "detector" / "notify-spool"

    @property
    def sqlite(self) -> Path:
        """The control-plane database on the embedded default."""
        return self.root / "garrison.sqlite3"

    @property
    def django_secret(self) -> Path:
        """Django's signing key (encrypted under the KEK)."""
        return self.keys / "django-secret.enc"

    def ensure(self) -> DataDir:
        """Create the directory tree with private permissions."""
        for path in (self.root, self.keys, self.pki):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o700)
        return self
