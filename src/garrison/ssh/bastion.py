"""The bastion: Debian's OpenSSH sshd, configured by Garrison, that only forwards.

A person arrives with a certificate of the user CA (``publickey``) and must then answer a TOTP
prompt (``keyboard-interactive`` through PAM: ``AuthenticationMethods publickey,
keyboard-interactive``). The PAM service runs ``garrison ssh second-factor``, which reads the
certificate sshd exposes (``ExposeAuthInfo``, ``SSH_AUTH_INFO_0``) and the code typed, and
checks both against the control plane. There is no shell (``ForceCommand``, ``PermitTTY no``):
only ``ProxyJump`` (direct-tcpip) to the ``HOST:PORT`` the principals file permits.

PAM names its service after the program, so sshd runs through a link named
``garrison-bastion`` and reads ``/etc/pam.d/garrison-bastion``, leaving the host's own sshd
configuration alone. Every file is written atomically and the whole configuration is checked
with ``sshd -t`` before it is used. Garrison accepts the connections itself and runs one
``sshd -i`` for each (`garrison.ssh.listener`), which is how each connection's record (who,
from where, to which targets, how long, bytes) is known.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess  # nosec B404  # sshd -t validates the configuration
from dataclasses import dataclass, field
from pathlib import Path

from garrison.core.errors import ConfigError, ValidationError
from garrison.core.files import replace_private
from garrison.ssh.listener import LOG_ROTATE_BYTES, BastionLog, Listener

SSHD = Path("/usr/sbin/sshd")
DEFAULT_DIRECTORY = Path("/etc/garrison/bastion")
SERVICE = "garrison-bastion"
PAM_DIR = Path("/etc/pam.d")
ROLE_PRINCIPALS = ("role-admin", "role-operator", "role-developer")
_TARGET = re.compile(r"^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Bastion:
    """Everything the bastion's sshd is told."""

    directory: Path
    listen: str  # ADDRESS:PORT
    account: str  # the one Unix account people jump through
    trusted_ca: list[str]  # the user CA's public keys
    krl: Path
    host_key: Path
    host_certificate: Path | None
    helper: list[str]  # the second-factor command PAM runs
    permit_open: list[str] = field(default_factory=list)  # [ROLE=]HOST:PORT people may reach

    def __post_init__(self) -> None:
        if not _ACCOUNT.match(self.account):
            raise ValidationError(f"{self.account!r} is not a Unix account name")
        for spec in self.permit_open:
            role, _, target = spec.rpartition("=")
            if not _TARGET.match(target) or (role and f"role-{role}" not in ROLE_PRINCIPALS):
                raise ValidationError(
                    f"{spec!r} is not [ROLE=]HOST:PORT",
                    hint="ROLE is admin, operator or developer; without it, every role",
                )
        if not self.trusted_ca:
            raise ValidationError("the bastion needs the user CA's public key")

    @property
    def config_path(self) -> Path:
        """The sshd_config Garrison writes."""
        return self.directory / "sshd_config"

    @property
    def program(self) -> Path:
        """The link to sshd whose name is the PAM service."""
        return self.directory / SERVICE


def principals_file(bastion: Bastion) -> str:
    """Who may jump, and where to: each role principal, with a ``permitopen`` per target it
    may reach (``ROLE=HOST:PORT`` for that role, ``HOST:PORT`` for every role)."""
    lines = []
    for principal in ROLE_PRINCIPALS:
        targets = []
        for spec in bastion.permit_open:
            role, _, target = spec.rpartition("=")
            if not role or f"role-{role}" == principal:
                targets.append(target)
        # none:1 (nothing listens there): the certificate gets in, but reaches nothing
        options = ",".join(f'permitopen="{t}"' for t in targets or ["none:1"])
        lines.append(f"{options} {principal}\n")
    return "".join(lines)


def sshd_config(bastion: Bastion) -> str:
    """The bastion's sshd_config: certificates and TOTP, forwarding only, no shell."""
    d = bastion.directory
    certificate = (
        f"HostCertificate {bastion.host_certificate}\n" if bastion.host_certificate else ""
    )
    return (
        "# Written by Garrison (garrison ssh bastion); changes are overwritten.\n"
        f"# Garrison listens on {bastion.listen} and runs sshd -i for each connection.\n"
        f"HostKey {bastion.host_key}\n{certificate}"
        "AuthorizedKeysFile none\n"
        f"TrustedUserCAKeys {d / 'user_ca.pub'}\n"
        f"RevokedKeys {bastion.krl}\n"
        f"AuthorizedPrincipalsFile {d / 'principals'}/%u\n"
        f"AllowUsers {bastion.account}\n"
        "AuthenticationMethods publickey,keyboard-interactive\n"
        "PubkeyAuthentication yes\nKbdInteractiveAuthentication yes\n"
        "PasswordAuthentication no\nPermitEmptyPasswords no\nHostbasedAuthentication no\n"
        "UsePAM yes\nExposeAuthInfo yes\nPermitRootLogin no\n"
        "PermitTTY no\nX11Forwarding no\nAllowAgentForwarding no\n"
        "AllowStreamLocalForwarding no\nPermitTunnel no\nGatewayPorts no\n"
        "AllowTcpForwarding local\nPermitUserRC no\nPermitUserEnvironment no\n"
        "ForceCommand /bin/echo This is the Garrison bastion: use it with ssh -J.\n"
        "MaxAuthTries 3\nMaxSessions 10\nLoginGraceTime 30\n"
        "ClientAliveInterval 30\nClientAliveCountMax 4\n"
        "LogLevel DEBUG1\n"  # for the jump's target; Garrison keeps the debug lines out of the log
    )


def pam_service(helper: list[str]) -> str:
    """The PAM service: say what the prompt wants, hand the typed code to the helper."""
    command = " ".join(shlex.quote(part) for part in helper)
    return (
        "# Written by Garrison (garrison ssh bastion): the bastion's second factor.\n"
        "auth optional pam_exec.so stdout /bin/echo Garrison: type your TOTP code.\n"
        f"auth required pam_exec.so expose_authtok quiet {command}\n"
        "auth optional pam_permit.so\n"  # so that pam_setcred succeeds
        "account required pam_permit.so\n"
        "session required pam_permit.so\n"
    )


def _public(path: Path, text: str) -> None:
    replace_private(path, text.encode())
    os.chmod(path, 0o644)


def _check_parents(path: Path) -> None:
    """sshd reads the principals file as the jump account, and refuses it (StrictModes) under
    a directory others may write: every directory above `path` must be enterable by others,
    and writable by its owner only."""
    for parent in path.parents:
        mode = os.stat(parent).st_mode
        if not mode & 0o001:
            raise ConfigError(
                f"the bastion directory {path} is inside {parent}, which other users cannot "
                "enter (sshd reads the principals file as the jump account)",
                hint="use e.g. /etc/garrison/bastion",
            )
        if mode & 0o022:
            raise ConfigError(
                f"the bastion directory {path} is inside {parent}, which others may write "
                "(sshd's StrictModes refuses it)",
                hint="use e.g. /etc/garrison/bastion",
            )


def install(bastion: Bastion, pam_dir: Path = PAM_DIR) -> None:
    """Write the configuration, principals, CA keys and PAM service, then `sshd -t` it; a
    configuration sshd refuses raises `ConfigError` with sshd's words."""
    d = bastion.directory
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)  # noqa: S103  # nosec B103  # sshd reads principals as the jump account
    _check_parents(d / "principals")
    (d / "principals").mkdir(mode=0o755, exist_ok=True)
    _public(d / "user_ca.pub", "".join(f"{k}\n" for k in bastion.trusted_ca))
    _public(d / "principals" / bastion.account, principals_file(bastion))
    _public(bastion.config_path, sshd_config(bastion))
    _public(pam_dir / SERVICE, pam_service(bastion.helper))
    if not bastion.program.is_symlink():
        bastion.program.symlink_to(SSHD)
    check = subprocess.run(  # noqa: S603  # nosec B603  # fixed arguments
        [str(bastion.program), "-t", "-f", str(bastion.config_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise ConfigError(f"sshd refuses the bastion configuration: {check.stderr.strip()}")


def run(bastion: Bastion, log_path: Path, *, rotate_bytes: int = LOG_ROTATE_BYTES) -> int:
    """Serve the bastion in the foreground until SIGTERM or SIGINT (`garrison.ssh.listener`:
    one ``sshd -i`` per connection); sshd's lines and the connection records go to
    `log_path` for the agent to ship (`--watch sshd:ssh:LOG_PATH`) and to stderr."""
    log = BastionLog(log_path, rotate_bytes=rotate_bytes)
    listener = Listener(bastion.program, bastion.config_path, bastion.listen, log)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: listener.stop())
    try:
        listener.serve()
    finally:
        log.close()
    return 0
