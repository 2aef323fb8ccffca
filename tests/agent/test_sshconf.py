"""The agent's sshd configuration: applied, checked by sshd -t, never left broken."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from garrison.agent.sshconf import SSHBundle
from garrison.core.errors import ConfigError, ValidationError
from garrison.ssh.ca import SSHAuthority
from tests.ssh.helpers import SSHD, Sshd, host_root, new_authority, new_key, run_logged

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def authority(tmp_path: Path) -> SSHAuthority:
    return new_authority(tmp_path)


def _bundle(authority: SSHAuthority, revoked: list[int], tmp_path: Path) -> SSHBundle:
    krl = tmp_path / "krl"
    authority.write_krl(revoked, krl)
    return SSHBundle(
        user_ca=authority.trusted("user"),
        krl=krl.read_bytes(),
        principals={"root": ["role-admin"]},
    )


def _login(server: Sshd, key: Path) -> int:
    return server.ssh(key).returncode


def test_applied_then_a_certificate_logs_in_and_a_revocation_applies(
    tmp_path: Path, authority: SSHAuthority
) -> None:
    host, port, reloads = host_root(tmp_path)
    bundle = _bundle(authority, [], tmp_path)  # (a KRL carries its time: write it once)
    assert host.apply(bundle)
    assert reloads == ["reload"]  # the drop-in is new
    assert not host.apply(bundle)  # nothing changed, nothing done
    config = host.etc / "sshd_config"
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    server = Sshd(
        host.root, port, run_logged([str(SSHD), "-D", "-e", "-f", str(config)], host.root)
    )
    try:
        key = tmp_path / "admin"
        new_key(key)
        issued = authority.sign(
            "user", Path(f"{key}.pub").read_text(), serial=31, key_id="ana",
            principals=["ana", "role-admin"], valid_for=HOUR,
        )  # fmt: skip
        Path(f"{key}-cert.pub").write_text(issued.certificate + "\n")
        assert _login(server, key) == 0, server.log
        host.apply(_bundle(authority, [31], tmp_path))
        assert reloads == ["reload"]  # a KRL is read at each login: no reload needed
        assert _login(server, key) == 255
    finally:
        server.stop()


def test_a_configuration_sshd_refuses_is_rolled_back(
    tmp_path: Path, authority: SSHAuthority
) -> None:
    host, _, reloads = host_root(tmp_path)
    host.apply(_bundle(authority, [], tmp_path))
    before = {p: p.read_bytes() for p in host.own.rglob("*") if p.is_file()}
    main = host.etc / "sshd_config"
    main.write_text(main.read_text() + "NoSuchOption yes\n")  # someone broke the main config
    new = SSHBundle(["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"], b"", {"deploy": ["role-developer"]})
    with pytest.raises(ConfigError, match="NoSuchOption"):
        host.apply(new)
    after = {p: p.read_bytes() for p in host.own.rglob("*") if p.is_file()}
    assert after == before  # every file as it was; nothing reloaded
    assert reloads == ["reload"]


def test_replies_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    good = {"user_ca": ["ssh-ed25519 AAAA"], "krl": "", "principals": {"root": ["role-admin"]}}
    assert SSHBundle.from_reply(good).principals == {"root": ["role-admin"]}
    for bad, message in (
        ({**good, "user_ca": ["ssh-ed25519 AAAA\nPermitRootLogin yes"]}, "user CA"),
        ({**good, "principals": {"../etc": ["x"]}}, "principals entry"),
        ({**good, "principals": {"root": ["x y"]}}, "bad principal"),
        ({**good, "krl": "%%%"}, "not base64"),
    ):
        with pytest.raises(ValidationError, match=message):
            SSHBundle.from_reply(bad)
