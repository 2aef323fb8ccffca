"""`garrison ssh login` against a running server, then the stock ssh client into a real sshd
that trusts Garrison's user CA: the whole path from a person to a shell."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyotp

from tests.cli import garrison
from tests.e2e.conftest import Garrison
from tests.ssh.helpers import new_key, start_sshd


def test_login_then_plain_ssh(garrison_server: Garrison, tmp_path: Path) -> None:
    server = garrison_server
    password = tmp_path / "pw"
    password.write_text("a long and unusual passphrase 77\n")
    os.chmod(password, 0o600)
    made = garrison(
        "admin", "create", "--username", "olga", "--role", "operator",
        "--password-file", str(password), "--data-dir", str(server.data_dir),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret = re.search(r"totp_secret: (\w+)", made.stdout)
    assert secret is not None
    key = tmp_path / "id_ed25519"
    new_key(key)
    ssh_dir = tmp_path / "dot-ssh"
    code = pyotp.TOTP(secret[1]).now()
    login = garrison(
        "ssh", "login", "--server", server.url, "--user", "olga",
        "--password-file", str(password), "--code", code,
        "--key", str(key) + ".pub", "--ttl", "2h", "--server-ca", str(server.ca_path),
        "--ssh-dir", str(ssh_dir),
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    assert (tmp_path / "id_ed25519-cert.pub").exists()
    known = (ssh_dir / "garrison_known_hosts").read_text()
    assert known.startswith("@cert-authority * ssh-ed25519 ")
    assert "UserKnownHostsFile" in (ssh_dir / "garrison_config").read_text()

    user_ca = (server.data_dir / "ssh" / "user_ca.pub").read_text().strip()
    sshd = start_sshd(tmp_path / "sshd", user_ca, {"root": ["role-operator"]})
    try:
        result = sshd.ssh(key)
        assert result.returncode == 0, result.stderr + sshd.log
        assert "ID olga (serial " in sshd.log
    finally:
        sshd.stop()

    again = garrison(
        "ssh", "login", "--server", server.url, "--user", "olga",
        "--password-file", str(password), "--code", code,
        "--key", str(key) + ".pub", "--server-ca", str(server.ca_path),
        "--ssh-dir", str(ssh_dir),
    )  # fmt: skip
    assert again.returncode == 2, "the same code twice: the second login must be refused"
    assert "already used" in again.stderr
