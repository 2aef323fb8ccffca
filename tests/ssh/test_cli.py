"""The `garrison ssh` contract: ca init, sign (writes KEY-cert.pub), revoke, krl; all audited."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli import garrison
from tests.ssh.helpers import KEYGEN, new_key


def _keygen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEYGEN, *args], capture_output=True, text=True, check=False)


def test_init_sign_revoke_krl(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init = garrison("ssh", "ca", "init", data_dir=data)
    assert init.returncode == 0, init.stderr
    assert init.stdout.count("ssh-ed25519 ") == 2
    pub = new_key(tmp_path / "id_ed25519")
    signed = garrison(
        "ssh", "sign", "--user", "alice", "--principals", "alice,deploy", "--ttl", "1h",
        str(pub), data_dir=data,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    cert = tmp_path / "id_ed25519-cert.pub"
    shown = _keygen("-L", "-f", str(cert)).stdout
    assert 'Key ID: "alice"' in shown
    serial = shown.split("Serial: ", 1)[1].split()[0]
    too_long = garrison("ssh", "sign", "--user", "alice", "--ttl", "200h", str(pub), data_dir=data)
    assert too_long.returncode == 2
    assert "longer than the 24 h allowed" in too_long.stderr

    krl = tmp_path / "revoked.krl"
    assert garrison("ssh", "krl", "--out", str(krl), data_dir=data).returncode == 0
    assert _keygen("-Q", "-f", str(krl), str(cert)).returncode == 0
    revoked = garrison("ssh", "revoke", "--serial", serial, data_dir=data)
    assert revoked.returncode == 0, revoked.stderr
    assert garrison("ssh", "krl", "--out", str(krl), data_dir=data).returncode == 0
    assert "REVOKED" in _keygen("-Q", "-f", str(krl), str(cert)).stdout
    assert "REVOKED" in _keygen("-Q", "-f", str(data / "ssh" / "revoked.krl"), str(cert)).stdout
    unknown = garrison("ssh", "revoke", "--serial", "12345", data_dir=data)
    assert unknown.returncode == 4

    listed = garrison("ssh", "list", data_dir=data).stdout
    assert "revoked" in listed
    trail = garrison(
        "logs", "search", "--stream", "audit", "--format", "jsonl", "category=cli", data_dir=data
    ).stdout
    actions = [json.loads(line)["action"] for line in trail.splitlines()]
    assert {"cli.ssh.ca-init", "cli.ssh.sign", "cli.ssh.revoke"} <= set(actions)


def test_host_certificates_and_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pub = new_key(tmp_path / "ssh_host_ed25519_key")
    signed = garrison("ssh", "sign", "--host", "web-1.example", str(pub), data_dir=data)
    assert signed.returncode == 0, signed.stderr
    shown = _keygen("-L", "-f", str(tmp_path / "ssh_host_ed25519_key-cert.pub")).stdout
    assert "host certificate" in shown
    assert "web-1.example" in shown
    neither = garrison("ssh", "sign", str(pub), data_dir=data)
    assert neither.returncode == 2
    assert "--user NAME or --host NAME" in neither.stderr
    missing = garrison("ssh", "sign", "--user", "bob", str(tmp_path / "nope.pub"), data_dir=data)
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
