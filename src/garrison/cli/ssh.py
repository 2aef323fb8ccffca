"""`garrison ssh`: the SSH certificate authorities, signing, revocation and the KRL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from garrison.cli import ssh_bastion as bastion
from garrison.cli.common import (
    DataDirOption,
    audit_cli,
    load_settings,
    migrate,
    out,
    read_secret_file,
    setup_django,
)
from garrison.core.durations import duration
from garrison.core.errors import UsageError
from garrison.ssh.ca import KINDS

app = typer.Typer(help="SSH certificates: CAs, signing, revocation.", no_args_is_help=True)
ca_app = typer.Typer(help="The SSH user and host CAs.", no_args_is_help=True)
app.add_typer(ca_app, name="ca")

KindOption = Annotated[str, typer.Option("--kind", help="Which CA: user or host.")]


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


@ca_app.command("init")
def ca_init(data_dir: DataDirOption = None) -> None:
    """Create the user and host CAs (Ed25519, encrypted at rest); print their public keys."""
    settings = load_settings(data_dir)
    authority = bastion.authority_for(settings)
    existed = authority.exists()
    keys = authority.init()
    if not existed:
        audit_cli(settings, "cli.ssh.ca-init")
    for kind, key in zip(KINDS, keys, strict=True):
        out.print(f"{kind} CA: {escape(key)}")


@ca_app.command("show")
def ca_show(data_dir: DataDirOption = None) -> None:
    """Print every trusted public key of both CAs (two during a rotation)."""
    authority = bastion.authority_for(load_settings(data_dir))
    for kind in KINDS:
        for key in authority.trusted(kind):
            out.print(f"{kind} CA: {escape(key)}")


@ca_app.command("rotate")
def ca_rotate(kind: KindOption = "user", data_dir: DataDirOption = None) -> None:
    """Start a rotation (a new key, trusted beside the current one), or, run again, sign with
    the new key from now on (the old one stays trusted until `retire`)."""
    settings = load_settings(data_dir)
    said = bastion.authority_for(settings).rotate(_kind(kind))
    audit_cli(settings, "cli.ssh.ca-rotate", resource=kind, parameters={"step": said})
    out.print(f"{kind} CA: {said}")


@ca_app.command("retire")
def ca_retire(kind: KindOption = "user", data_dir: DataDirOption = None) -> None:
    """Stop trusting the CA's previous key (once the certificates it signed have expired)."""
    settings = load_settings(data_dir)
    bastion.authority_for(settings).retire(_kind(kind))
    audit_cli(settings, "cli.ssh.ca-retire", resource=kind)
    out.print(f"{kind} CA: the previous key is no longer trusted")


def _cert_path(public_key_file: Path) -> Path:
    """OpenSSH's name for the certificate of ``id_ed25519.pub``: ``id_ed25519-cert.pub``."""
    name = public_key_file.name
    stem = name[: -len(".pub")] if name.endswith(".pub") else name
    return public_key_file.with_name(f"{stem}-cert.pub")


@app.command("sign")
def sign(
    public_key_file: Annotated[Path, typer.Argument(help="The public key to certify (.pub).")],
    user: Annotated[
        str | None, typer.Option(help="The person the certificate names (its key id).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Sign a host certificate for this host name instead.")
    ] = None,
    principals: Annotated[
        str | None,
        typer.Option(help="Comma-separated principals (default: the user, or the host name)."),
    ] = None,
    ttl: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 1h or 30m (default: ssh_cert_hours).")
    ] = None,
    source_address: Annotated[
        str, typer.Option(help="Comma-separated CIDRs the certificate may be used from.")
    ] = "",
    agent_forwarding: Annotated[
        bool, typer.Option(help="Permit agent forwarding (user certificates).")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Certify a public key for a user (or, with --host, a host); write KEY-cert.pub beside it."""
    settings = load_settings(data_dir)
    if (user is None) == (host is None):
        raise UsageError("say whom the certificate is for: --user NAME or --host NAME")
    try:
        text = public_key_file.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {public_key_file}: {exc.strerror}") from None
    try:
        seconds = duration(ttl) if ttl is not None else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    setup_django()
    migrate()
    from django.db import transaction  # noqa: PLC0415  # after setup

    from garrison.server.ssh import actions  # noqa: PLC0415

    name = (user or host or "").lower()
    kind = "user" if user is not None else "host"
    names = [p.strip().lower() for p in (principals or name).split(",") if p.strip()]
    if kind == "user":
        valid_for = actions.user_lifetime(None if seconds is None else seconds / 3600)
    else:
        valid_for = dt.timedelta(
            seconds=seconds if seconds is not None else settings.ssh_host_cert_days * 86400
        )
    with transaction.atomic():  # the certificate is recorded only with its audit event
        issued = actions.do_issue(
            None,
            kind,
            text,
            key_id=name,
            principals=names,
            valid_for=valid_for,
            source_address=source_address,
            agent_forwarding=agent_forwarding,
        )
        audit_cli(
            settings,
            "cli.ssh.sign",
            resource=name,
            parameters={
                "kind": kind,
                "serial": str(issued.serial),
                "principals": ",".join(issued.principals),
                "valid_before": issued.valid_before.isoformat(),
                "fingerprint": issued.fingerprint,
            },
        )
    target = _cert_path(public_key_file)
    target.write_text(issued.certificate + "\n")
    out.print(
        f"signed {kind} certificate serial {issued.serial} for {escape(name)} "
        f"({', '.join(issued.principals)}) until {issued.valid_before.isoformat()}: {target}"
    )


@app.command("revoke")
def revoke(
    serial: Annotated[int, typer.Option(help="The certificate's serial.", min=1)],
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a certificate; the KRL hosts pull is rewritten at once."""
    settings = load_settings(data_dir)
    setup_django()
    migrate()
    from django.db import transaction  # noqa: PLC0415  # after setup

    from garrison.server.ssh import actions  # noqa: PLC0415

    with transaction.atomic():
        found = actions.do_revoke(None, serial)
        audit_cli(
            settings, "cli.ssh.revoke", resource=found.key_id, parameters={"serial": str(serial)}
        )
    out.print(f"revoked certificate {serial} of {escape(found.key_id)}")


@app.command("krl")
def krl(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the KRL.")],
    data_dir: DataDirOption = None,
) -> None:
    """Write the key revocation list (OpenSSH's KRL format) of the revoked certificates."""
    settings = load_settings(data_dir)
    setup_django()
    migrate()
    from garrison.server.ssh.queries import revoked_serials  # noqa: PLC0415  # after setup

    serials = revoked_serials()
    bastion.authority_for(settings).write_krl(serials, out_file)
    out.print(f"wrote {out_file}: {len(serials)} revoked certificates")


@app.command("list")
def list_certificates(data_dir: DataDirOption = None) -> None:
    """Every certificate issued, newest first, with its state."""
    load_settings(data_dir)
    setup_django()
    migrate()
    from garrison.server.ssh.models import Certificate  # noqa: PLC0415  # after setup

    table = Table("serial", "kind", "key id", "principals", "valid until", "state")
    for cert in Certificate.objects.all()[:500]:
        table.add_row(
            str(cert.serial),
            cert.kind,
            escape(cert.key_id),
            escape(", ".join(cert.principals)),
            cert.valid_before.isoformat(timespec="minutes"),
            cert.state,
        )
    out.print(table)


def _secret_from(path: Path | None, prompt: str) -> str:
    """A secret from a file, else typed at a hidden prompt."""
    if path is None:
        return str(typer.prompt(prompt, hide_input=True))
    return read_secret_file(path, prompt.lower() + " file")


@app.command("login")
def login(
    server: Annotated[str, typer.Option(help="The console URL, https://HOST:PORT.")],
    user: Annotated[
        str | None, typer.Option(help="Your username (then your password is asked).")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="A file holding one of your API tokens (instead of --user).")
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="A file holding your password (else it is asked).")
    ] = None,
    code: Annotated[
        str | None, typer.Option(help="The current TOTP code (else it is asked).")
    ] = None,
    key: Annotated[
        Path, typer.Option(help="Your public key, certified in place (KEY-cert.pub beside it).")
    ] = Path("~/.ssh/id_ed25519.pub"),
    ttl: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 2h (default and maximum: the server's).")
    ] = None,
    server_ca: Annotated[
        Path | None, typer.Option(help="CA file to trust for the server (Garrison's ca.crt).")
    ] = None,
    ssh_dir: Annotated[
        Path, typer.Option(help="Where garrison_known_hosts and garrison_config are written.")
    ] = Path("~/.ssh"),
) -> None:
    """Get a short-lived certificate for your key; plain `ssh HOST` then goes via the bastion."""
    from garrison.core.api_client import post_json  # noqa: PLC0415  # the only network call

    if (user is None) == (token_file is None):
        raise UsageError("say who you are: --user NAME (password) or --token-file FILE")
    public_key = key.expanduser()
    try:
        text = public_key.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read your public key {public_key}: {exc.strerror}") from None
    body: dict[str, object] = {"public_key": text}
    if ttl is not None:
        try:
            body["ttl_hours"] = duration(ttl) / 3600
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    token = None
    if token_file is not None:
        token = _secret_from(token_file, "API token")
    else:
        body["username"] = user
        body["password"] = _secret_from(password_file, "Password")
    body["totp"] = code if code is not None else str(typer.prompt("TOTP code"))
    issued = post_json(
        server, "/api/v1/ssh/login", body, token=token, server_ca=server_ca, what="the login"
    )
    cert = _cert_path(public_key)
    cert.write_text(str(issued["certificate"]) + "\n")
    folder = ssh_dir.expanduser()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    known = folder / "garrison_known_hosts"
    known.write_text("".join(f"{line}\n" for line in issued["known_hosts"]))
    config = str(issued["ssh_config"]).replace("~/.ssh/garrison_known_hosts", str(known))
    (folder / "garrison_config").write_text(config)
    out.print(
        f"certificate {issued['serial']} for {escape(', '.join(issued['principals']))} "
        f"until {issued['valid_before']}: {cert}"
    )
    out.print(
        f"Add [bold]Include {folder / 'garrison_config'}[/] at the top of ~/.ssh/config, "
        "then plain `ssh HOST` goes through the bastion."
    )


app.command("second-factor", hidden=True)(bastion.second_factor)
app.command("bastion")(bastion.bastion)
