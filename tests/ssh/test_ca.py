"""The SSH CAs: keys encrypted at rest, certificates as OpenSSH reads them, KRL, rotation."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from garrison.core.errors import ConflictError, ValidationError
from garrison.ssh.ca import SSHAuthority, fingerprint, read_certificate
from tests.ssh.helpers import KEYGEN, new_authority, new_key

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def authority(tmp_path: Path) -> SSHAuthority:
    return new_authority(tmp_path)


def _keygen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEYGEN, *args], capture_output=True, text=True, check=False)


def _sign(ca: SSHAuthority, pub: Path, serial: int, **kw: object) -> Path:
    issued = ca.sign(
        "user",
        pub.read_text(),
        serial=serial,
        key_id=str(kw.pop("key_id", "alice")),
        principals=list(kw.pop("principals", ["alice"])),  # type: ignore[call-overload]
        valid_for=HOUR,
        **kw,  # type: ignore[arg-type]
    )
    cert = pub.with_name(f"{pub.name[:-4]}-cert.pub")
    cert.write_text(issued.certificate + "\n")
    return cert


def test_ca_keys_are_ed25519_and_encrypted_at_rest(authority: SSHAuthority) -> None:
    key = (authority.dir / "user_ca").read_bytes()
    with pytest.raises((TypeError, ValueError)):
        serialization.load_ssh_private_key(key, None)  # needs the KEK-derived passphrase
    assert (authority.dir / "user_ca").stat().st_mode & 0o077 == 0
    assert authority.public_key("user").startswith("ssh-ed25519 ")
    assert authority.public_key("user") != authority.public_key("host")
    assert authority.init() == [authority.public_key("user"), authority.public_key("host")]


def test_a_user_certificate_says_who_what_and_until_when(
    authority: SSHAuthority, tmp_path: Path
) -> None:
    pub = new_key(tmp_path / "id_ed25519")
    cert = _sign(authority, pub, 4242, principals=["alice", "deploy"], source_address="10.0.0.0/8")
    shown = _keygen("-L", "-f", str(cert)).stdout
    assert 'Key ID: "alice"' in shown
    assert "Serial: 4242" in shown
    assert "alice" in shown
    assert "deploy" in shown
    assert "source-address 10.0.0.0/8" in shown
    assert "permit-pty" in shown
    assert "permit-port-forwarding" in shown  # ProxyJump through the bastion needs it
    assert "permit-agent-forwarding" not in shown  # only where the role allows it
    parsed = read_certificate(cert.read_text())
    assert parsed.valid_before - parsed.valid_after == 3600 + 300  # five minutes for skew
    forwarding = _sign(authority, new_key(tmp_path / "fwd"), 4243, agent_forwarding=True)
    assert "permit-agent-forwarding" in _keygen("-L", "-f", str(forwarding)).stdout
    assert fingerprint(pub.read_text()) in _keygen("-l", "-f", str(pub)).stdout


def test_what_is_not_certified(authority: SSHAuthority, tmp_path: Path) -> None:
    pub = new_key(tmp_path / "id_ed25519").read_text()
    cases: list[tuple[str, dict[str, object], str]] = [
        (pub, {"principals": []}, "at least one principal"),
        (pub, {"principals": ["Root Admin"]}, "not a valid user principal"),
        (pub, {"valid_for": dt.timedelta(0)}, "valid for some time"),
        ("ssh-ed25519 AAAA-broken", {}, "not an OpenSSH public key"),
        ("ssh-foo AAAAB3NzaC1yc2E=", {}, "not an OpenSSH public key"),  # unknown key type
    ]
    weak = subprocess.run(
        [KEYGEN, "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(tmp_path / "weak")],
        check=True,
    )
    assert weak.returncode == 0
    cases.append(((tmp_path / "weak.pub").read_text(), {}, "at least 3072 bits"))
    cert = _sign(authority, tmp_path / "id_ed25519.pub", 1)
    cases.append((cert.read_text(), {}, "not a certificate"))
    for key, changes, message in cases:
        options: dict[str, object] = {"principals": ["alice"], "valid_for": HOUR, **changes}
        with pytest.raises(ValidationError, match=message):
            authority.sign("user", key, serial=7, key_id="alice", **options)  # type: ignore[arg-type]


def test_the_krl_revokes_by_serial_across_a_rotation(
    authority: SSHAuthority, tmp_path: Path
) -> None:
    old = _sign(authority, new_key(tmp_path / "a"), 11)
    authority.rotate("user")  # a new key, trusted beside the current one
    assert len(authority.trusted("user")) == 2
    authority.rotate("user")  # the new key signs; the old one is still trusted
    new = _sign(authority, new_key(tmp_path / "b"), 12)
    assert (
        read_certificate(old.read_text()).signature_key()
        != read_certificate(new.read_text()).signature_key()
    )
    kept = _sign(authority, new_key(tmp_path / "c"), 13)
    krl = tmp_path / "revoked.krl"
    authority.write_krl([11, 12], krl)
    assert "REVOKED" in _keygen("-Q", "-f", str(krl), str(old)).stdout
    assert "REVOKED" in _keygen("-Q", "-f", str(krl), str(new)).stdout
    assert _keygen("-Q", "-f", str(krl), str(kept)).returncode == 0
    with pytest.raises(ConflictError, match="retire it first"):
        authority.rotate("user")  # never three keys trusted at once
    authority.retire("user")
    assert authority.trusted("user") == [authority.public_key("user")]
