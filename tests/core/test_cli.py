"""The CLI contract: --version, --help, `admin create` printing the TOTP secret, `pki`."""

from __future__ import annotations

from pathlib import Path

import pyotp

from garrison import __version__
from tests.cli import garrison


def test_version_and_help() -> None:
    """`garrison --version` prints the version; `--help` lists the command groups."""
    assert garrison("--version").stdout.strip() == f"garrison {__version__}"
    help_text = garrison("--help").stdout
    for group in ("server", "up", "admin", "pki", "config"):
        assert group in help_text


def test_admin_create_prints_totp_secret(tmp_path: Path) -> None:
    """`admin create` makes an admin non-interactively and prints `totp_secret: BASE32`."""
    pw = tmp_path / "pw"
    pw.write_text("a long and unusual passphrase 31\n")
    proc = garrison(
        "admin",
        "create",
        "--username",
        "root-admin",
        "--password-file",
        str(pw),
        "--role",
        "admin",
        data_dir=tmp_path / "data",
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("totp_secret: "))
    secret = line.removeprefix("totp_secret: ")
    assert len(pyotp.TOTP(secret).now()) == 6
    assert "a long and unusual passphrase" not in proc.stdout
    again = garrison(
        "admin",
        "create",
        "--username",
        "root-admin",
        "--password-file",
        str(pw),
        data_dir=tmp_path / "data",
    )
    assert again.returncode == 5
    assert "already exists" in again.stderr


def test_admin_create_refuses_weak_password(tmp_path: Path) -> None:
    """A weak password is refused with the policy's reason and exit code 2."""
    pw = tmp_path / "pw"
    pw.write_text("password\n")
    proc = garrison(
        "admin",
        "create",
        "--username",
        "someone",
        "--password-file",
        str(pw),
        data_dir=tmp_path / "data",
    )
    assert proc.returncode == 2
    assert "too short" in proc.stderr or "too common" in proc.stderr


def test_pki_init_and_show(tmp_path: Path) -> None:
    """`pki init` creates the CA once; `pki show` prints its fingerprint."""
    first = garrison("pki", "init", data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "created CA" in first.stdout
    assert "CA already exists" in garrison("pki", "init", data_dir=tmp_path).stdout
    shown = garrison("pki", "show", data_dir=tmp_path)
    assert "ca_sha256:" in shown.stdout
    assert (tmp_path / "pki" / "ca.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED")
