"""The host's sshd, kept in step with the control plane by the agent, never locking anyone out.

What the collector hands over (`SSHBundle`: the user CA's trusted keys, the KRL, which
principals may log in as which account, the host certificate) goes to ``/etc/ssh/garrison/``
and a drop-in ``/etc/ssh/sshd_config.d/garrison.conf`` (Debian's sshd_config includes that
folder first, so its settings win):

    TrustedUserCAKeys, RevokedKeys, AuthorizedPrincipalsFile, HostCertificate,
    PasswordAuthentication no, KbdInteractiveAuthentication no

Every change is checked with ``sshd -t`` on the whole configuration before it counts: when
sshd refuses it (or a write fails), every file is put back as it was and the refusal is
reported; the running sshd never sees a configuration it would reject. Keys and KRL are read by
sshd at each login, so only a changed drop-in or host certificate needs a reload.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import subprocess  # nosec B404  # sshd -t and the reload
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from garrison.core.errors import ConfigError, ValidationError
from garrison.core.files import replace_private

log = logging.getLogger("garrison.agent")

ACCOUNT_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PRINCIPAL_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class SSHBundle:
    """What the control plane says this host's sshd should trust."""

    user_ca: list[str]
    krl: bytes
    principals: dict[str, list[str]]  # account -> principals that may log in as it
    host_certificate: str = ""

    @classmethod
    def from_reply(cls, reply: dict[str, object]) -> SSHBundle:
        """The bundle of a collector reply, checked (nothing odd reaches sshd's files)."""
        user_ca = reply.get("user_ca")
        principals = reply.get("principals")
        if not isinstance(user_ca, list) or not all(
            isinstance(k, str) and k.startswith("ssh-") and "\n" not in k for k in user_ca
        ):
            raise ValidationError("the collector sent no usable user CA keys")
        if not isinstance(principals, dict):
            raise ValidationError("the collector sent no principals")
        for account, names in principals.items():
            if not ACCOUNT_RE.match(str(account)) or not isinstance(names, list):
                raise ValidationError(f"bad principals entry for {account!r}")
            for name in names:
                if not isinstance(name, str) or not PRINCIPAL_RE.match(name):
                    raise ValidationError(f"bad principal {name!r} for {account}")
        try:
            krl = base64.b64decode(str(reply.get("krl", "")), validate=True)
        except ValueError:
            raise ValidationError("the collector's KRL is not base64") from None
        certificate = str(reply.get("host_certificate") or "")
        if "\n" in certificate.strip():
            raise ValidationError("the host certificate must be one line")
        return cls(
            list(user_ca), krl, {str(a): list(n) for a, n in principals.items()}, certificate
        )


class HostSSH:
    """The files of one host's sshd (under `root`, ``/`` on a real host)."""

    def __init__(
        self,
        root: Path = Path("/"),
        *,
        sshd: Path = Path("/usr/sbin/sshd"),
        reload: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self.sshd = sshd
        self.reload = reload or self._reload
        self.etc = root / "etc" / "ssh"
        self.own = self.etc / "garrison"

    @property
    def dropin(self) -> Path:
        """Garrison's part of the sshd configuration."""
        return self.etc / "sshd_config.d" / "garrison.conf"

    @property
    def host_key(self) -> Path:
        """The host key the host certificate certifies."""
        return self.etc / "ssh_host_ed25519_key.pub"

    @property
    def host_certificate(self) -> Path:
        """Where the host certificate goes (beside its key, as sshd expects)."""
        return self.etc / "ssh_host_ed25519_key-cert.pub"

    def _dropin_text(self, with_certificate: bool) -> str:
        certificate = f"HostCertificate {self.host_certificate}\n" if with_certificate else ""
        return (
            "# Written by the Garrison agent; changes are overwritten.\n"
            f"TrustedUserCAKeys {self.own / 'user_ca.pub'}\n"
            f"RevokedKeys {self.own / 'revoked.krl'}\n"
            f"AuthorizedPrincipalsFile {self.own / 'principals'}/%u\n"
            f"{certificate}"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
        )

    def _wanted(self, bundle: SSHBundle) -> dict[Path, bytes]:
        files = {
            self.own / "user_ca.pub": "".join(f"{k}\n" for k in bundle.user_ca).encode(),
            self.own / "revoked.krl": bundle.krl,
        }
        for account, names in bundle.principals.items():
            files[self.own / "principals" / account] = "".join(f"{n}\n" for n in names).encode()
        if bundle.host_certificate:
            files[self.host_certificate] = bundle.host_certificate.strip().encode() + b"\n"
        files[self.dropin] = self._dropin_text(bool(bundle.host_certificate)).encode()
        return files

    def apply(self, bundle: SSHBundle) -> bool:
        """Bring the files to `bundle`; True when something changed. When sshd refuses the
        result, everything is restored and `ConfigError` says why."""
        wanted = self._wanted(bundle)
        before = {path: path.read_bytes() if path.exists() else None for path in wanted}
        changed = [p for p, data in wanted.items() if before[p] != data]
        stale = self._stale_principals(bundle)
        if not changed and not stale:
            return False
        try:
            for path in changed:
                replace_private(path, wanted[path])
                os.chmod(path, 0o644)  # public: principals are read as the account
            self.check()
        except (ConfigError, OSError) as exc:
            self._restore(before)
            raise ConfigError(f"sshd configuration not changed: {exc}") from None
        for path in stale:
            path.unlink()
        if self.dropin in changed or self.host_certificate in changed:
            self.reload()
        log.info("agent: sshd configuration updated (%d files)", len(changed) + len(stale))
        return True

    def _stale_principals(self, bundle: SSHBundle) -> list[Path]:
        folder = self.own / "principals"
        if not folder.is_dir():
            return []
        return [p for p in folder.iterdir() if p.is_file() and p.name not in bundle.principals]

    def _restore(self, before: dict[Path, bytes | None]) -> None:
        for path, data in before.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                replace_private(path, data)
                os.chmod(path, 0o644)

    def check(self) -> None:
        """``sshd -t`` on the whole configuration; `ConfigError` with sshd's words."""
        result = subprocess.run(  # noqa: S603  # nosec B603  # fixed arguments
            [str(self.sshd), "-t", "-f", str(self.etc / "sshd_config")],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ConfigError(f"sshd -t refused it: {result.stderr.strip()}")

    def _reload(self) -> None:
        """Ask the running sshd to re-read its configuration (SIGHUP to its pid file)."""
        pid_file = self.root / "run" / "sshd.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            log.warning("agent: no running sshd to reload (%s)", pid_file)
            return
        os.kill(pid, 1)  # SIGHUP: sshd re-executes with the new configuration
