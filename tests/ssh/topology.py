"""The bastion topology in network namespaces, for the bastion test and the SSH benchmark.

client (10.77.1.2) --- (10.77.1.1) bastion (10.77.2.1, 10.77.2.3) --- (10.77.2.2) host

The bastion is `garrison ssh bastion` (Debian's sshd, configured by Garrison, its PAM asking
for the TOTP code); the host runs sshd with the user CA, principals and a rule that admits only
the bastion's address. People are operators made with `garrison admin create`.
"""

from __future__ import annotations

import datetime as dt
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from garrison.core.secrets import KeyRing
from garrison.ssh.ca import SSHAuthority
from tests.cli import garrison
from tests.netns import Namespaces, namespaces
from tests.ssh.helpers import SSH, Sshd, new_key, run_logged, start_sshd

ACCOUNT = "garrison-jump"
BASTION, HOST, SIDE_DOOR = "10.77.1.1", "10.77.2.2", "10.77.2.3"
PAM_FILE = Path("/etc/pam.d/garrison-bastion")


@contextmanager
def jump_account() -> Iterator[str]:
    """The Unix account people jump through (made, and removed after, when missing)."""
    try:
        pwd.getpwnam(ACCOUNT)
        made = False
    except KeyError:
        subprocess.run(["useradd", "--system", "--shell", "/bin/sh", ACCOUNT], check=True)
        made = True
    try:
        yield ACCOUNT
    finally:
        if made:
            subprocess.run(["userdel", ACCOUNT], check=False)


@dataclass
class Topology:
    """The running topology and what the client holds."""

    net: Namespaces
    data: Path
    work: Path
    bastion: subprocess.Popen[bytes]
    host: Sshd
    secrets: dict[str, str]
    authority: SSHAuthority
    serials: list[str] = field(default_factory=list)

    @property
    def bastion_log(self) -> str:
        return (self.work / "bastion" / "sshd.log").read_text(errors="replace")

    def key(self, name: str) -> Path:
        key = self.work / name
        new_key(key)
        return key

    def sign(self, key: Path, *extra: str, user: str = "olga") -> str:
        """A certificate for `key` by `garrison ssh sign`; its serial."""
        signed = garrison("ssh", "sign", "--user", user, *extra, f"{key}.pub", data_dir=self.data)
        found = re.search(r"serial (\d+)", signed.stdout)
        if signed.returncode != 0 or found is None:
            raise RuntimeError(signed.stderr)
        return found[1]

    def ssh(
        self, key: Path, code: str, *, bastion_only: bool = False, target: str = HOST
    ) -> subprocess.CompletedProcess[str]:
        """The stock client in the client namespace, through the bastion to `target` (or,
        with `bastion_only`, to the bastion itself); `code` answers the TOTP prompt."""
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
            where = ["-J", f"{ACCOUNT}@{BASTION}:2222", f"root@{target}"]
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


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def _person(data: Path, work: Path, name: str) -> str:
    password = work / "pw"
    password.write_text("a long and unusual passphrase 91\n")
    made = garrison(
        "admin", "create", "--username", name, "--role", "operator",
        "--password-file", str(password), data_dir=data,
    )  # fmt: skip
    secret = re.search(r"totp_secret: (\w+)", made.stdout)
    if made.returncode != 0 or secret is None:
        raise RuntimeError(made.stderr)
    return secret[1]


@contextmanager
def topology(people: list[str]) -> Iterator[Topology]:
    """The three namespaces with the bastion and the host running; `people` are operators
    (their TOTP secrets in `Topology.secrets`). Everything is removed afterwards."""
    # sshd reads the bastion's principals file as the jump account, and not under a directory
    # others may write: neither pytest's private tmp dir nor /tmp, but /run.
    work = Path(tempfile.mkdtemp(prefix="garrison-bastion-", dir="/run"))
    work.chmod(0o755)
    data = work / "data"
    secrets = {name: _person(data, work, name) for name in people}
    if garrison("ssh", "ca", "init", data_dir=data).returncode != 0:
        raise RuntimeError("garrison ssh ca init failed")
    authority = SSHAuthority(data / "ssh", KeyRing.load_or_create(data / "keys" / "kek"))
    (work / "known_hosts").write_text(f"@cert-authority * {authority.public_key('host')}\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    try:
        with jump_account(), namespaces("client", "bastion", "host") as net:
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
                _private_dir(work / "bastion"),
                ready="listening on",
                name="bastion.out",
            )  # fmt: skip
            host = _host(net, work, data, authority)
            try:
                yield Topology(net, data, work, bastion, host, secrets, authority)
            finally:
                bastion.terminate()
                bastion.wait(10)
                host.stop()
    finally:
        PAM_FILE.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def _host(net: Namespaces, work: Path, data: Path, authority: SSHAuthority) -> Sshd:
    """The private host's sshd: the user CA, root for role-operator, the bastion only."""
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
    return start_sshd(
        host_dir,
        authority.public_key("user"),
        {"root": ["role-operator"]},
        krl=data / "ssh" / "revoked.krl",
        listen=HOST,
        port=22,
        extra=f"HostCertificate {host_key}-cert.pub\nAllowUsers *@10.77.2.1\n"
        "Subsystem sftp internal-sftp\n",
        wrap=lambda argv: net.argv("host", argv),
    )
