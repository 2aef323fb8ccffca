"""`garrison pki`: the internal certificate authority."""

from __future__ import annotations

from typing import Annotated

import typer
from cryptography.hazmat.primitives import hashes

from garrison.cli.common import DataDirOption, load_settings, out
from garrison.core.paths import DataDir
from garrison.core.pki import CertificateAuthority
from garrison.core.secrets import KeyRing

app = typer.Typer(help="The internal certificate authority.", no_args_is_help=True)


def _ca(data_dir: DataDirOption, create: bool) -> CertificateAuthority:
    settings = load_settings(data_dir)
    data = DataDir(settings.data_path).ensure()
    keyring = KeyRing.load_or_create(data.kek) if create else KeyRing.load(data.kek)
    return CertificateAuthority(data.pki, keyring)


@app.command("init")
def init(
    data_dir: DataDirOption = None,
    name: Annotated[str, typer.Option(help="CA common name.")] = "Garrison internal CA",
) -> None:
    """Create the CA (key encrypted at rest); does nothing if it exists."""
    ca = _ca(data_dir, create=True)
    existed = ca.exists()
    cert = ca.init(name)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":")
    out.print(f"{'CA already exists' if existed else 'created CA'}: {ca.cert_path}")
    out.print(f"sha256 fingerprint: {fingerprint}")


@app.command("show")
def show(data_dir: DataDirOption = None) -> None:
    """Print the CA and the server certificate with their expiry."""
    ca = _ca(data_dir, create=False)
    cert = ca.certificate()
    out.print(f"ca: {cert.subject.rfc4514_string()}")
    out.print(f"ca_not_after: {cert.not_valid_after_utc.isoformat()}")
    out.print(f"ca_sha256: {cert.fingerprint(hashes.SHA256()).hex(':')}")
    issued = ca.current("server")
    if issued:
        out.print(f"server_not_after: {issued.not_after.isoformat()}")
