"""Prepare a data directory for the control plane: KEK, Django signing key, CA."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from garrison.core.files import create_private
from garrison.core.paths import DataDir
from garrison.core.pki import CertificateAuthority
from garrison.core.secrets import KeyRing
from garrison.core.settings import Settings
from garrison.ssh.ca import SSHAuthority


@dataclass(frozen=True)
class Prepared:
    """What the control plane needs from its data directory."""

    data: DataDir
    keyring: KeyRing
    secret_key: str


def prepare(settings: Settings) -> Prepared:
    """Create (first run) or open the data dir's key material."""
    data = DataDir(settings.data_path).ensure()
    keyring = KeyRing.load_or_create(data.kek)
    path = data.django_secret
    if not path.exists():
        sealed = keyring.seal(secrets.token_urlsafe(64).encode(), purpose="django-secret")
        create_private(path, sealed.encode())
    secret_key = keyring.open(path.read_text(), purpose="django-secret").decode()
    return Prepared(data, keyring, secret_key)


def certificate_authority(prepared: Prepared) -> CertificateAuthority:
    """The data dir's internal CA (created on first use)."""
    ca = CertificateAuthority(prepared.data.pki, prepared.keyring)
    ca.init()
    return ca


def ssh_authority(prepared: Prepared) -> SSHAuthority:
    """The data dir's SSH user and host CAs (created on first use)."""
    authority = SSHAuthority(prepared.data.ssh, prepared.keyring)
    if not authority.exists():
        authority.init()
    return authority
