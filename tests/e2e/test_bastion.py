"""The bastion in network namespaces: client -> bastion (certificate + TOTP) -> private host.

client (10.77.1.2) --- (10.77.1.1) bastion (10.77.2.1, 10.77.2.3) --- (10.77.2.2) host

The bastion is `garrison ssh bastion` (Debian's sshd, configured by Garrison, its PAM asking
for the TOTP code); the host runs sshd with the user CA, principals and a rule that admits only
the bastion's address. The client is the stock ssh with ProxyJump.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest

from garrison.core.secrets import KeyRing
from garrison.ssh.ca import SSHAuthority
from tests.cli import garrison
from tests.netns import Namespaces, namespaces
from tests.ssh.helpers import SSH, Sshd, new_key, run_logged, start_sshd

ACCOUNT = "garrison-jump"
BASTION, HOST, SIDE_DOOR = "10.77.1.1", "10.77.2.2", "10.77.2.3"
PAM_FILE = Path("/etc/pam.d/garrison-bastion")


def _garrison(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return garrison(*args, data_dir=data)


@pytest.fixture(scope="module")
def jump_account() -> Iterator[str]:
    """The Unix account people jump through (made for the test when missing)."""
    try:
        pwd.getpwnam(ACCOUNT)
        made = False
    except KeyError:
        subprocess.run(["useradd", "--system", "--shell", "/bin/sh", ACCOUNT], check=True)
        made = True
    yield ACCOUNT
    if made:
        subprocess.run(["userdel", ACCOUNT], check=False)


@dataclass
class World:
    """The running topology and what the client holds."""

    net: Namespaces
    data: Path
    work: Path
    bastion: subprocess.Popen[bytes]
    host: Sshd
    secret: str
    authority: SSHAuthority

    @property
    def bastion_log(self) -> str:
        return (self.work / "bastion" / "sshd.log").read_text(errors="replace")

    def key(self, name: str) -> Path:
        key = self.work / name
        new_key(key)
        return key

    def sign(self, key: Path, *extra: str) -> str:
        signed = _garrison(self.data, "ssh", "sign", "--user", "olga", *extra, f"{key}.pub")
        assert signed.returncode == 0, signed.stderr
        found = re.search(r"serial (\d+)", signed.stdout)
        assert found is not None
        return found[1]

    def ssh(
        self, key: Path, code: str, *, bastion_only: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """The stock client in the client namespace, through the bastion to the host (or, with
        `bastion_only`, to the bastion itself); `code` answers the TOTP prompt."""
        config = self.work / f"{key.name}.config"
        config.write_text(
            "Host *\n"
            f"  IdentityFile {key}\n  CertificateFile {key}-cert.pub\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.work / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
            "  PasswordAuthentication no\n  ConnectTimeout 5\n  NumberOfPasswordPrompts 1\n"
        )
        askpass = self.work / "askpass"
        askpass.write_text(f"#!/bin/sh\necho {code}\n")
        askpass.chmod(0o755)
        if bastion_only:
            where = ["-p", "2222", f"{ACCOUNT}@{BASTION}"]
        else:
            where = ["-J", f"{ACCOUNT}@{BASTION}:2222", f"root@{HOST}"]
        env = {
            "PATH": "/usr/bin:/bin",
            "SSH_ASKPASS": str(askpass),
            "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": "none",
        }
        return subprocess.run(
            self.net.argv("client", [SSH, "-F", str(config), *where, "echo reached"]),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def world(jump_account: str) -> Iterator[World]:
    # sshd reads the bastion's principals file as the jump account, and not under a directory
    # others may write: neither pytest's private tmp dir nor /tmp, but /run.
    work = Path(tempfile.mkdtemp(prefix="garrison-bastion-", dir="/run"))
    work.chmod(0o755)
    data = work / "data"
    password = work / "pw"
    password.write_text("a long and unusual passphrase 91\n")
    made = _garrison(
        data, "admin", "create", "--username", "olga", "--role", "operator",
        "--password-file", str(password),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret = re.search(r"totp_secret: (\w+)", made.stdout)
    assert secret is not None
    assert _garrison(data, "ssh", "ca", "init").returncode == 0
    authority = SSHAuthority(data / "ssh", KeyRing.load_or_create(data / "keys" / "kek"))
    (work / "known_hosts").write_text(f"@cert-authority * {authority.public_key('host')}\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    with namespaces("client", "bastion", "host") as net:
        net.link("client", "10.77.1.2/24", "bastion", f"{BASTION}/24")
        net.link("bastion", "10.77.2.1/24", "host", f"{HOST}/24")
        net.address("bastion", "host", f"{SIDE_DOOR}/24")
        bastion = run_logged(
            net.argv(
                "bastion",
                [
                    sys.executable, "-m", "garrison", "ssh", "bastion",
                    "--listen", f"{BASTION}:2222", "--permit-open", f"{HOST}:22",
                    "--account", ACCOUNT, "--directory", str(work / "bastion"),
                    "--name", BASTION, "--data-dir", str(data),
                ],
            ),
            _ready_dir(work / "bastion"),
        )  # fmt: skip
        host_dir = work / "host"
        host_key = host_dir / "host_ed25519"
        host_dir.mkdir()
        new_key(host_key)
        issued = authority.sign(
            "host",
            Path(f"{host_key}.pub").read_text(),
            serial=424242,
            key_id="host",
            principals=[HOST],
            valid_for=dt.timedelta(hours=1),
        )
        Path(f"{host_key}-cert.pub").write_text(issued.certificate + "\n")
        host = start_sshd(
            host_dir,
            authority.public_key("user"),
            {"root": ["role-operator"]},
            krl=data / "ssh" / "revoked.krl",
            listen=HOST,
            port=22,
            extra=f"HostCertificate {host_key}-cert.pub\nAllowUsers *@10.77.2.1\n",
            wrap=lambda argv: net.argv("host", argv),
        )
        try:
            yield World(net, data, work, bastion, host, secret[1], authority)
        finally:
            bastion.terminate()
            bastion.wait(10)
            host.stop()
    PAM_FILE.unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)


def _ready_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def _fresh_code(secret: str) -> str:
    """A code of a step no earlier test used (codes work once)."""
    totp = pyotp.TOTP(secret)
    used = _fresh_code.__dict__.setdefault("used", set())
    while (code := totp.now()) in used:
        time.sleep(1)
    used.add(code)
    return code


def test_certificate_and_totp_reach_the_private_host(world: World) -> None:
    key = world.key("olga")
    serial = world.sign(key, "--principals", "olga,role-operator")
    code = _fresh_code(world.secret)
    result = world.ssh(key, code)
    assert result.returncode == 0, result.stderr + world.bastion_log + world.host.log
    assert result.stdout.strip() == "reached"
    assert f"ID olga (serial {serial})" in world.bastion_log
    assert "Accepted publickey for root from 10.77.2.1" in world.host.log
    assert f"ID olga (serial {serial})" in world.host.log

    replay = world.ssh(key, code)  # the same code again
    assert replay.returncode == 255
    assert "Permission denied" in replay.stderr


def test_what_the_bastion_refuses(world: World) -> None:
    """Each on its own, and none reaches the host."""
    plain = world.key("plain")
    other = SSHAuthority(world.work / "other-ca", KeyRing.load_or_create(world.work / "okek"))
    other.init()
    foreign = world.key("foreign")
    Path(f"{foreign}-cert.pub").write_text(
        other.sign(
            "user",
            Path(f"{foreign}.pub").read_text(),
            serial=5,
            key_id="olga",
            principals=["role-operator"],
            valid_for=dt.timedelta(hours=1),
        ).certificate
        + "\n"
    )
    expired = world.key("expired")
    Path(f"{expired}-cert.pub").write_text(
        world.authority.sign(
            "user",
            Path(f"{expired}.pub").read_text(),
            serial=6,
            key_id="olga",
            principals=["role-operator"],
            valid_for=dt.timedelta(hours=1),
            now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3),
        ).certificate
        + "\n"
    )
    stranger = world.key("stranger")
    world.sign(stranger, "--principals", "olga,role-auditor")
    revoked = world.key("revoked")
    serial = world.sign(revoked, "--principals", "olga,role-operator")
    assert _garrison(world.data, "ssh", "revoke", "--serial", serial).returncode == 0
    wrong_code = world.key("wrongcode")
    world.sign(wrong_code, "--principals", "olga,role-operator")
    # All but the last fail at the certificate, before any code is asked for.
    for key, code in (
        (plain, "111111"),
        (foreign, "111111"),
        (expired, "111111"),
        (stranger, "111111"),
        (revoked, "111111"),
        (wrong_code, "000000"),
    ):
        refused = world.ssh(key, code)
        assert refused.returncode == 255, key.name
        assert "Permission denied" in refused.stderr, key.name
    assert "reached" not in world.host.log


def test_no_password_no_shell_no_side_door(world: World) -> None:
    key = world.key("olga2")
    world.sign(key, "--principals", "olga,role-operator")
    password = subprocess.run(
        world.net.argv(
            "client",
            [
                SSH, "-F", "/dev/null", "-o", "PreferredAuthentications=password",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-p", "2222", f"{ACCOUNT}@{BASTION}", "true",
            ],
        ),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert password.returncode == 255
    assert "Permission denied" in password.stderr
    shell = world.ssh(key, _fresh_code(world.secret), bastion_only=True)
    assert "This is the Garrison bastion" in shell.stdout + shell.stderr
    side_door = subprocess.run(
        world.net.argv(
            "bastion",
            [
                SSH, "-F", "/dev/null", "-b", SIDE_DOOR, "-i", str(key), "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", f"root@{HOST}", "echo reached",
            ],
        ),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert side_door.returncode == 255
    assert "reached" not in side_door.stdout
    no_route = subprocess.run(
        world.net.argv("client", [SSH, "-o", "ConnectTimeout=3", f"root@{HOST}", "true"]),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert no_route.returncode == 255


def test_the_second_factor_is_audited(world: World) -> None:
    trail = _garrison(
        world.data, "logs", "search", "--stream", "audit", "--format", "jsonl",
        "action=ssh.bastion.second-factor",
    )  # fmt: skip
    outcomes = {json.loads(line)["outcome"] for line in trail.stdout.splitlines()}
    assert {"success", "denied"} <= outcomes
    assert os.path.exists(PAM_FILE)
