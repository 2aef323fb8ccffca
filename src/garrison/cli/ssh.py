"""`garrison ssh`: the SSH certificate authorities, signing, revocation and the KRL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from garrison.cli.common import (
    ConfigOption,
    DataDirOption,
    audit_cli,
    load_settings,
    migrate,
    out,
    read_secret_file,
    setup_django,
)
from garrison.core.durations import duration
from garrison.core.errors import GarrisonError, UsageError
from garrison.core.paths import DataDir
from garrison.core.secrets import KeyRing
from garrison.core.settings import Settings
from garrison.ssh.ca import KINDS, SSHAuthority

app = typer.Typer(help="SSH certificates: CAs, signing, revocation.", no_args_is_help=True)
ca_app = typer.Typer(help="The SSH user and host CAs.", no_args_is_help=True)
app.add_typer(ca_app, name="ca")

KindOption = Annotated[str, typer.Option("--kind", help="Which CA: user or host.")]


def _authority(settings: Settings) -> SSHAuthority:
    data = DataDir(settings.data_path).ensure()
    return SSHAuthority(data.ssh, KeyRing.load_or_create(data.kek))


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


@ca_app.command("init")
def ca_init(data_dir: DataDirOption = None) -> None:
    """Create the user and host CAs (Ed25519, encrypted at rest); print their public keys."""
    settings = load_settings(data_dir)
    authority = _authority(settings)
    existed = authority.exists()
    keys = authority.init()
    if not existed:
        audit_cli(settings, "cli.ssh.ca-init")
    for kind, key in zip(KINDS, keys, strict=True):
        out.print(f"{kind} CA: {escape(key)}")


@ca_app.command("show")
def ca_show(data_dir: DataDirOption = None) -> None:
    """Print every trusted public key of both CAs (two during a rotation)."""
    authority = _authority(load_settings(data_dir))
    for kind in KINDS:
        for key in authority.trusted(kind):
            out.print(f"{kind} CA: {escape(key)}")


@ca_app.command("rotate")
def ca_rotate(kind: KindOption = "user", data_dir: DataDirOption = None) -> None:
    """Start a rotation (a new key, trusted beside the current one), or, run again, sign with
    the new key from now on (the old one stays trusted until `retire`)."""
    settings = load_settings(data_dir)
    said = _authority(settings).rotate(_kind(kind))
    audit_cli(settings, "cli.ssh.ca-rotate", resource=kind, parameters={"step": said})
    out.print(f"{kind} CA: {said}")


@ca_app.command("retire")
def ca_retire(kind: KindOption = "user", data_dir: DataDirOption = None) -> None:
    """Stop trusting the CA's previous key (once the certificates it signed have expired)."""
    settings = load_settings(data_dir)
    _authority(settings).retire(_kind(kind))
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
    _authority(settings).write_krl(serials, out_file)
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
    """Get a short-lived certificate for your key: plain `ssh HOST` then works through the
    bastion, hosts checked by the host CA."""
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


def _certificate_from_auth_info(info: str) -> tuple[str, int, str]:
    """Key id, serial and key fingerprint of the certificate in sshd's ``SSH_AUTH_INFO_0``."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    from garrison.ssh.ca import fingerprint, read_certificate  # noqa: PLC0415

    for line in info.splitlines():
        method, _, rest = line.partition(" ")
        if method == "publickey" and "-cert-v01@openssh.com" in rest.split(" ", 1)[0]:
            cert = read_certificate(rest)
            key = cert.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            return cert.key_id.decode(errors="replace"), cert.serial, fingerprint(key.decode())
    raise UsageError("no certificate in SSH_AUTH_INFO_0: the bastion needs ExposeAuthInfo")


@app.command("second-factor", hidden=True)
def second_factor(data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """The bastion's PAM helper: the certificate sshd accepted (SSH_AUTH_INFO_0) and the TOTP
    code typed (stdin) checked against the control plane; exit 0 lets the person in."""
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    settings = load_settings(data_dir, config)
    code = sys.stdin.read(64).strip("\x00\r\n ")
    ip = os.environ.get("PAM_RHOST")
    key_id, serial, key = _certificate_from_auth_info(os.environ.get("SSH_AUTH_INFO_0", ""))
    setup_django()
    from garrison.server.ssh import actions  # noqa: PLC0415  # after setup

    try:
        actions.do_check_bastion_login(key_id, serial, key, code, ip)
    except GarrisonError as exc:
        _bastion_audit(settings, key_id, serial, ip, "denied", exc.message)
        raise typer.Exit(1) from None
    _bastion_audit(settings, key_id, serial, ip, "success", "")


def _bastion_audit(
    settings: Settings, key_id: str, serial: int, ip: str | None, outcome: str, reason: str
) -> None:
    from garrison.events.audit import Actor, AuditEvent, AuditTrail, new_id, now_iso  # noqa: PLC0415
    from garrison.logstore.local import open_store  # noqa: PLC0415

    store = open_store(settings)
    try:
        AuditTrail(store).record(
            AuditEvent(
                event_id=new_id(),
                time=now_iso(),
                actor=Actor("user", name=key_id),
                action="ssh.bastion.second-factor",
                outcome=outcome,  # type: ignore[arg-type]  # success or denied
                read_only=False,
                source_ip=ip or "",
                resource=str(serial),
                request_parameters={"reason": reason} if reason else {},
            )
        )
    finally:
        store.close()


@app.command("bastion")
def bastion(
    listen: Annotated[str, typer.Option(help="ADDRESS:PORT the bastion listens on.")],
    permit_open: Annotated[
        list[str] | None,
        typer.Option(help="HOST:PORT people may jump to (repeatable; none: nowhere)."),
    ] = None,
    account: Annotated[
        str, typer.Option(help="The Unix account people jump through (it must exist).")
    ] = "jump",
    directory: Annotated[
        Path, typer.Option(help="Where the bastion's configuration is written.")
    ] = Path("/etc/garrison/bastion"),
    name: Annotated[
        list[str] | None,
        typer.Option(help="Host names in the bastion's host certificate (repeatable)."),
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Configure and run OpenSSH's sshd as the bastion: certificates and TOTP, forwarding only."""
    import os  # noqa: PLC0415
    import pwd  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from garrison.ssh.bastion import Bastion, install  # noqa: PLC0415

    settings = load_settings(data_dir, config)
    try:
        pwd.getpwnam(account)
    except KeyError:
        raise UsageError(
            f"there is no Unix account {account!r} to jump through",
            hint=f"useradd --system --create-home --shell /bin/sh {account}",
        ) from None
    setup_django()
    migrate()
    from garrison.server.ssh import actions  # noqa: PLC0415  # after setup

    authority = _authority(settings)
    authority.init()
    actions.publish_krl()
    folder = directory.resolve()
    host_key = folder / "host_ed25519"
    names = name or [listen.rpartition(":")[0].strip("[]")]
    host_cert = _bastion_host_certificate(settings, folder, host_key, names)
    helper = [sys.executable, "-m", "garrison", "ssh", "second-factor"]
    helper += ["--data-dir", str(settings.data_path)]
    if config is not None:
        helper += ["--config", str(config.resolve())]
    setup = Bastion(
        directory=folder,
        listen=listen,
        account=account,
        trusted_ca=authority.trusted("user"),
        krl=DataDir(settings.data_path).ssh_krl,
        host_key=host_key,
        host_certificate=host_cert,
        helper=helper,
        permit_open=permit_open or [],
    )
    install(setup)
    audit_cli(
        settings,
        "cli.ssh.bastion",
        resource=listen,
        parameters={"account": account, "permit_open": ",".join(setup.permit_open)},
    )
    out.print(f"bastion on {escape(listen)} (sshd, configuration in {folder})", highlight=False)
    sys.stdout.flush()
    program = str(setup.program)
    os.execv(program, [program, "-D", "-e", "-f", str(setup.config_path)])  # noqa: S606  # nosec B606


def _bastion_host_certificate(
    settings: Settings, folder: Path, host_key: Path, names: list[str]
) -> Path:
    """The bastion's host key (made once) and a fresh host certificate for `names`."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415
    from django.db import transaction  # noqa: PLC0415

    from garrison.core.files import create_private  # noqa: PLC0415
    from garrison.server.ssh import actions  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    if not host_key.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        create_private(
            host_key,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        host_key.with_name(host_key.name + ".pub").write_bytes(public + b"\n")
    with transaction.atomic():
        issued = actions.do_issue(
            None,
            "host",
            host_key.with_name(host_key.name + ".pub").read_text(),
            key_id=f"bastion {names[0]}",
            principals=names,
            valid_for=dt.timedelta(days=settings.ssh_host_cert_days),
        )
        audit_cli(settings, "cli.ssh.sign", resource=names[0], parameters={"kind": "host"})
    cert = host_key.with_name(host_key.name + "-cert.pub")
    cert.write_text(issued.certificate + "\n")
    return cert
