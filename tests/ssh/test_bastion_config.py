"""The bastion's configuration: who may jump where, checked by sshd -t, in a safe directory."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from garrison.core.errors import ConfigError, ValidationError
from garrison.ssh.bastion import Bastion, install, principals_file
from tests.ssh.helpers import new_authority, new_key


def _bastion(directory: Path, authority_dir: Path, *permit_open: str) -> Bastion:
    authority = new_authority(authority_dir)
    if not (authority_dir / "host_key").exists():
        new_key(authority_dir / "host_key")
    return Bastion(
        directory=directory,
        listen="127.0.0.1:2222",
        account="root",
        trusted_ca=authority.trusted("user"),
        krl=authority_dir / "revoked.krl",
        host_key=authority_dir / "host_key",
        host_certificate=None,
        helper=["/bin/false"],
        permit_open=list(permit_open),
    )


def test_targets_per_role_and_for_everyone(tmp_path: Path) -> None:
    setup = _bastion(tmp_path / "b", tmp_path, "web-1:22", "developer=dev-1:22", "admin=[::1]:22")
    assert principals_file(setup).splitlines() == [
        'permitopen="web-1:22",permitopen="[::1]:22" role-admin',
        'permitopen="web-1:22" role-operator',
        'permitopen="web-1:22",permitopen="dev-1:22" role-developer',
    ]
    nowhere = _bastion(tmp_path / "c", tmp_path / "c-ca")
    assert all(
        line.startswith('permitopen="none:1" ') for line in principals_file(nowhere).splitlines()
    )
    for bad in ("web-1", "auditor=web-1:22", "web 1:22"):
        with pytest.raises(ValidationError, match=r"\[ROLE=\]HOST:PORT"):
            _bastion(tmp_path / "d", tmp_path / "d-ca", bad)


def test_installed_configuration_passes_sshd_t_and_unsafe_places_are_refused(
    tmp_path: Path,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="garrison-bastion-config-", dir="/run"))
    try:
        work.chmod(0o755)
        pam = work / "pam.d"
        pam.mkdir()
        setup = _bastion(work / "bastion", work / "ca", "web-1:22")
        install(setup, pam_dir=pam)  # sshd -t accepts it
        config = setup.config_path.read_text()
        for line in (
            "AuthenticationMethods publickey,keyboard-interactive",
            "PermitTTY no",
            "PasswordAuthentication no",
            "ExposeAuthInfo yes",
            "AllowUsers root",
        ):
            assert line in config
        assert (
            "pam_exec.so expose_authtok quiet /bin/false" in (pam / "garrison-bastion").read_text()
        )
        unsafe = _bastion(tmp_path / "bastion", tmp_path / "ca")  # under /tmp: world-writable
        with pytest.raises(ConfigError, match=r"others may write|cannot enter"):
            install(unsafe, pam_dir=pam)
    finally:
        shutil.rmtree(work, ignore_errors=True)
