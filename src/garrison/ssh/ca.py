"""The SSH certificate authorities: one for users, one for hosts, Ed25519, keys encrypted at rest.

Files in ``<data dir>/ssh`` (0700): ``user_ca`` and ``host_ca``, each an OpenSSH private key
encrypted (bcrypt KDF, AES-256) with a passphrase derived from the key-encryption key, and its
``.pub``. Certificates are built and signed natively (cryptography's `SSHCertificateBuilder`);
the key revocation list is written in OpenSSH's KRL format by ``ssh-keygen -k``.

Rotation trusts two keys at most: `rotate` makes a new key and trusts it beside the current
one (``*.next``) while hosts learn it; a second `rotate` signs with it from then on and keeps
the old one trusted (``*.previous``) until `retire` drops it, once no certificate it signed
is still valid; only then can the next rotation begin.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess  # nosec B404  # ssh-keygen writes the KRL
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
)

from garrison.core.errors import ConflictError, CryptoError, NotFoundError, ValidationError
from garrison.core.files import create_private
from garrison.core.secrets import KeyRing

KINDS = ("user", "host")
PRINCIPAL_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,63}$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9*]([a-z0-9*-]{0,61}[a-z0-9])?(\.[a-z0-9*]([a-z0-9*-]{0,61}[a-z0-9])?)*$"
)
MIN_RSA_BITS = 3072
#: What every user certificate permits: a terminal, and port forwarding, which ProxyJump through
#: the bastion needs (where it may lead is the bastion's PermitOpen and each host's sshd_config).
USER_EXTENSIONS = (b"permit-pty", b"permit-port-forwarding")
#: Only where the role allows it: the agent's keys reachable from the host.
AGENT_FORWARDING = b"permit-agent-forwarding"
CLOCK_SKEW = dt.timedelta(minutes=5)

UserKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class Issued:
    """A signed certificate and what it says."""

    certificate: str  # one line, as in an ``-cert.pub`` file
    serial: int
    key_id: str
    kind: str
    principals: tuple[str, ...]
    valid_after: dt.datetime
    valid_before: dt.datetime
    fingerprint: str  # SHA256:... of the certified key, as ssh-keygen -l prints it
    ca_fingerprint: str


def fingerprint(public_key_line: str) -> str:
    """``SHA256:base64`` of an OpenSSH public key line (ssh-keygen -l's format)."""
    digest = hashlib.sha256(_blob(public_key_line)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _blob(line: str) -> bytes:
    parts = line.split()
    if len(parts) < 2:
        raise ValidationError("not an OpenSSH public key line (TYPE BASE64 [comment])")
    try:
        return base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValidationError("the public key's base64 is damaged") from None


def parse_user_key(line: str) -> UserKey:
    """A public key people may certify: Ed25519, ECDSA, or RSA of at least 3072 bits."""
    text = line.strip()
    if "-cert-v01@openssh.com" in text.split(" ", 1)[0]:
        raise ValidationError("send the public key (id_ed25519.pub), not a certificate")
    try:
        key = serialization.load_ssh_public_key(text.encode())
    except (ValueError, TypeError, IndexError, UnsupportedAlgorithm):
        raise ValidationError(
            "not an OpenSSH public key",
            hint="send the line of id_ed25519.pub (ssh-keygen -t ed25519)",
        ) from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ValidationError(f"RSA keys need at least {MIN_RSA_BITS} bits; use Ed25519")
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValidationError("only Ed25519, ECDSA and RSA keys can be certified")
    return key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class SSHAuthority:
    """The user and host CAs of one data directory."""

    def __init__(self, directory: Path, keyring: KeyRing) -> None:
        self.dir = directory
        self.keyring = keyring

    # --- keys ---------------------------------------------------------------------------------

    def _key_path(self, kind: str, slot: str = "", suffix: str = "") -> Path:
        if kind not in KINDS:
            raise ValidationError(f"unknown CA {kind!r}; use one of {KINDS}")
        return self.dir / f"{kind}_ca{'.' + slot if slot else ''}{suffix}"

    def exists(self) -> bool:
        """Whether both CAs have been created."""
        return all(self._key_path(k).is_file() for k in KINDS)

    def init(self) -> list[str]:
        """Create the user and host CAs (those missing); their public keys."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        for kind in KINDS:
            if not self._key_path(kind).is_file():
                self._new_key(self._key_path(kind), kind)
        return [self.public_key(kind) for kind in KINDS]

    def _passphrase(self, kind: str) -> bytes:
        return self.keyring.passphrase(f"ssh-{kind}-ca")

    def _new_key(self, path: Path, kind: str) -> None:
        key = ed25519.Ed25519PrivateKey.generate()
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.BestAvailableEncryption(self._passphrase(kind)),
        )
        if not create_private(path, encrypted):
            raise ConflictError(f"{path} appeared while it was being created; try again")
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        path.with_name(f"{path.name}.pub").write_bytes(public + f" garrison-{kind}-ca\n".encode())

    def _private(self, kind: str) -> ed25519.Ed25519PrivateKey:
        path = self._key_path(kind)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                f"no SSH {kind} CA in {self.dir}", hint="run `garrison ssh ca init`"
            ) from None
        try:
            key = serialization.load_ssh_private_key(data, self._passphrase(kind))
        except ValueError:
            raise CryptoError(
                f"the SSH {kind} CA key does not open with this data dir's key-encryption key"
            ) from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise CryptoError(f"the SSH {kind} CA key is not Ed25519")
        return key

    def public_key(self, kind: str, slot: str = "") -> str:
        """The CA's public key line (``ssh-ed25519 AAAA... garrison-user-ca``)."""
        try:
            return self._key_path(kind, slot, ".pub").read_text().strip()
        except FileNotFoundError:
            raise NotFoundError(
                f"no SSH {kind} CA in {self.dir}", hint="run `garrison ssh ca init`"
            ) from None

    def trusted(self, kind: str) -> list[str]:
        """Every public key of the CA that hosts (user CA) or clients (host CA) must trust:
        the signing key, and during a rotation the next or the previous one."""
        keys = [self.public_key(kind)]
        for slot in ("next", "previous"):
            if self._key_path(kind, slot, ".pub").is_file():
                keys.append(self.public_key(kind, slot))
        return keys

    # --- rotation -----------------------------------------------------------------------------

    def rotate(self, kind: str) -> str:
        """First call: a new key, trusted beside the current one (``next``). Second call: the
        new key signs from now on; the old one stays trusted (``previous``). What happened."""
        if self._key_path(kind, "previous").is_file():  # at most two keys trusted at once
            raise ConflictError(
                f"the SSH {kind} CA still trusts a previous key",
                hint="retire it first (`garrison ssh ca retire`), once its certificates expired",
            )
        if not self._key_path(kind, "next").is_file():
            self._new_key(self._key_path(kind, "next"), kind)
            return "a new key is trusted beside the current one; rotate again to sign with it"
        for suffix in ("", ".pub"):
            os.replace(self._key_path(kind, "", suffix), self._key_path(kind, "previous", suffix))
            os.replace(self._key_path(kind, "next", suffix), self._key_path(kind, "", suffix))
        return "the new key signs from now on; the previous one stays trusted until retired"

    def retire(self, kind: str) -> None:
        """Stop trusting the previous key (after its certificates expired)."""
        if not self._key_path(kind, "previous").is_file():
            raise NotFoundError(f"the SSH {kind} CA has no previous key to retire")
        for suffix in ("", ".pub"):
            self._key_path(kind, "previous", suffix).unlink()

    # --- signing ------------------------------------------------------------------------------

    def sign(
        self,
        kind: str,
        public_key_line: str,
        *,
        serial: int,
        key_id: str,
        principals: Iterable[str],
        valid_for: dt.timedelta,
        source_address: str = "",
        agent_forwarding: bool = False,
        now: dt.datetime | None = None,
    ) -> Issued:
        """Certify `public_key_line` for `principals` (user names, or host names for a host
        certificate) for `valid_for` from now (minus five minutes for clock skew)."""
        names = tuple(principals)
        if not names:
            raise ValidationError("a certificate needs at least one principal")
        pattern = PRINCIPAL_RE if kind == "user" else HOSTNAME_RE
        for name in names:
            if not pattern.match(name):
                raise ValidationError(f"{name!r} is not a valid {kind} principal")
        if valid_for <= dt.timedelta(0):
            raise ValidationError("a certificate must be valid for some time")
        if not 0 < serial < 2**64:
            raise ValidationError("a serial is a positive 64-bit number")
        subject = parse_user_key(public_key_line)
        start = (now or _now()) - CLOCK_SKEW
        end = start + CLOCK_SKEW + valid_for
        builder = (
            SSHCertificateBuilder()
            .public_key(subject)
            .serial(serial)
            .type(SSHCertificateType.USER if kind == "user" else SSHCertificateType.HOST)
            .key_id(key_id.encode())
            .valid_principals([n.encode() for n in names])
            .valid_after(int(start.timestamp()))
            .valid_before(int(end.timestamp()))
        )
        if kind == "user":
            if source_address:
                builder = builder.add_critical_option(b"source-address", source_address.encode())
            for extension in USER_EXTENSIONS + ((AGENT_FORWARDING,) if agent_forwarding else ()):
                builder = builder.add_extension(extension, b"")
        certificate = builder.sign(self._private(kind))
        line = certificate.public_bytes().decode() + f" {key_id}"
        return Issued(
            certificate=line,
            serial=serial,
            key_id=key_id,
            kind=kind,
            principals=names,
            valid_after=start,
            valid_before=end,
            fingerprint=fingerprint(public_key_line),
            ca_fingerprint=fingerprint(self.public_key(kind)),
        )

    # --- revocation ---------------------------------------------------------------------------

    def write_krl(self, serials: Iterable[int], out: Path) -> None:
        """The KRL revoking `serials` of every trusted user-CA key, written atomically to
        `out` (``ssh-keygen -k``; ``ssh-keygen -Q -f out CERT`` checks a certificate)."""
        keygen = shutil.which("ssh-keygen")
        if keygen is None:
            raise NotFoundError("ssh-keygen is not installed", hint="apt install openssh-client")
        out.parent.mkdir(parents=True, exist_ok=True)
        spec_lines = "".join(f"serial: {s}\n" for s in sorted(set(serials)))
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".krl-") as work:
            spec, krl = Path(work) / "spec", Path(work) / "krl"
            spec.write_text(spec_lines)
            for number, ca_line in enumerate(self.trusted("user")):
                ca_file = Path(work) / f"ca{number}.pub"
                ca_file.write_text(ca_line + "\n")
                update = ["-u"] if number else []
                result = subprocess.run(  # noqa: S603  # nosec B603  # fixed arguments
                    [keygen, "-q", "-k", *update, "-f", str(krl), "-s", str(ca_file), str(spec)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if result.returncode != 0:
                    raise CryptoError(
                        f"ssh-keygen could not write the KRL: {result.stderr.strip()}"
                    )
            os.chmod(krl, 0o644)
            os.replace(krl, out)


def read_certificate(line: str) -> SSHCertificate:
    """An OpenSSH certificate line, parsed (for tests and checks)."""
    try:
        found = serialization.load_ssh_public_identity(line.strip().encode())
    except (ValueError, UnsupportedAlgorithm):
        found = None
    if not isinstance(found, SSHCertificate):
        raise ValidationError("not an OpenSSH certificate")
    return found
