"""Keys and a real OpenSSH sshd on loopback for the SSH tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from garrison.agent.sshconf import HostSSH
from garrison.core.secrets import KeyRing
from garrison.ssh.ca import SSHAuthority

SSHD = "/usr/sbin/sshd"
KEYGEN = shutil.which("ssh-keygen") or "ssh-keygen"
SSH = shutil.which("ssh") or "ssh"
START_TIMEOUT = 10.0


def new_key(path: Path, kind: str = "ed25519") -> Path:
    """A passphrase-less key pair at `path` (and `path`.pub); the public key's path."""
    bits = ["-b", "3072"] if kind == "rsa" else []
    subprocess.run(  # fixed arguments
        [KEYGEN, "-q", "-t", kind, *bits, "-N", "", "-C", path.name, "-f", str(path)], check=True
    )
    return path.with_name(path.name + ".pub")


def new_authority(directory: Path) -> SSHAuthority:
    """Fresh SSH CAs in `directory` (with their own key-encryption key)."""
    authority = SSHAuthority(directory / "ssh", KeyRing.load_or_create(directory / "kek"))
    authority.init()
    return authority


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Sshd:
    """An sshd on 127.0.0.1 that trusts a user CA, with principals files per account."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        return (self.directory / "sshd.log").read_text(errors="replace")

    def ssh(
        self, key: Path, *options: str, user: str = "root", command: str = "echo reached"
    ) -> subprocess.CompletedProcess[str]:
        """The stock client, non-interactive, with `key` (and its -cert.pub, if present)."""
        return subprocess.run(  # fixed arguments
            [
                SSH,
                "-F",
                "/dev/null",
                *options,  # first: ssh keeps the first value it is given for an option
                "-i",
                str(key),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                f"UserKnownHostsFile={self.directory / 'known_hosts'}",
                "-o",
                "ConnectTimeout=5",
                "-p",
                str(self.port),
                f"{user}@127.0.0.1",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_sshd(
    directory: Path,
    trusted_ca: str,
    principals: dict[str, list[str]],
    *,
    krl: Path | None = None,
    extra: str = "",
    listen: str = "127.0.0.1",
    port: int | None = None,
    wrap: Callable[[list[str]], list[str]] = list,
) -> Sshd:
    """sshd -D on a free port of `listen`: certificates of `trusted_ca` only, no passwords;
    `wrap` runs it elsewhere (inside a network namespace)."""
    directory.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    host_key = directory / "host_ed25519"
    if not host_key.exists():
        new_key(host_key)
    (directory / "user_ca.pub").write_text(trusted_ca + "\n")
    folder = directory / "principals"
    folder.mkdir(exist_ok=True)
    for account, names in principals.items():
        (folder / account).write_text("".join(f"{n}\n" for n in names))
    port = port or free_port()
    revoked = f"RevokedKeys {krl}\n" if krl is not None else ""
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {listen}\nHostKey {host_key}\n"
        f"PidFile {directory / 'sshd.pid'}\n"
        "AuthorizedKeysFile none\n"
        f"TrustedUserCAKeys {directory / 'user_ca.pub'}\n"
        f"AuthorizedPrincipalsFile {folder}/%u\n"
        f"{revoked}"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nLogLevel VERBOSE\n"
        f"{extra}"
    )
    os.chmod(config, 0o600)
    return Sshd(directory, port, run_logged(wrap([SSHD, "-D", "-e", "-f", str(config)]), directory))


def run_logged(
    argv: list[str], directory: Path, ready: str = "Server listening on", name: str = "sshd.log"
) -> subprocess.Popen[bytes]:
    """Start a server whose output goes to `name` in `directory`; wait for `ready`."""
    log_path = directory / name
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if ready in log_path.read_text(errors="replace"):
            return process
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text(errors="replace"))
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"not ready: {log_path.read_text(errors='replace')}")


def host_root(tmp_path: Path) -> tuple[HostSSH, int, list[str]]:
    """A host's root with a Debian-like sshd_config that includes the drop-in folder, the
    `HostSSH` for it (reloads recorded, not done) and the port its sshd would use."""
    root = tmp_path / "host"
    etc = root / "etc" / "ssh"
    (etc / "sshd_config.d").mkdir(parents=True)
    new_key(etc / "ssh_host_ed25519_key")
    port = free_port()
    (etc / "sshd_config").write_text(
        f"Include {etc}/sshd_config.d/*.conf\n"
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {etc}/ssh_host_ed25519_key\n"
        f"PidFile {root}/run/sshd.pid\nAuthorizedKeysFile none\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nLogLevel VERBOSE\n"
    )
    (root / "run").mkdir()
    reloads: list[str] = []
    return HostSSH(root, reload=lambda: reloads.append("reload")), port, reloads
