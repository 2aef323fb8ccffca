"""`garrison ssh bastion` and its PAM helper `garrison ssh second-factor` (see
`garrison.ssh.bastion`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from garrison.cli.common import (
    ConfigOption,
    DataDirOption,
    audit_cli,
    load_settings,
    migrate,
    out,
    setup_django,
)
from garrison.core.errors import GarrisonError, UsageError
from garrison.core.paths import DataDir
from garrison.core.secrets import KeyRing
from garrison.core.settings import Settings
from garrison.ssh.bastion import DEFAULT_DIRECTORY
from garrison.ssh.ca import SSHAuthority


def authority_for(settings: Settings) -> SSHAuthority:
    """The data dir's SSH CAs, without the control plane (no database needed)."""
    data = DataDir(settings.data_path).ensure()
    return SSHAuthority(data.ssh, KeyRing.load_or_create(data.kek))


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


def bastion(
    listen: Annotated[str, typer.Option(help="ADDRESS:PORT the bastion listens on.")],
    permit_open: Annotated[
        list[str] | None,
        typer.Option(
            help="[ROLE=]HOST:PORT people (of ROLE) may jump to (repeatable; none: nowhere)."
        ),
    ] = None,
    account: Annotated[
        str, typer.Option(help="The Unix account people jump through (it must exist).")
    ] = "jump",
    directory: Annotated[
        Path, typer.Option(help="Where the bastion's configuration is written.")
    ] = DEFAULT_DIRECTORY,
    name: Annotated[
        list[str] | None,
        typer.Option(help="Host names in the bastion's host certificate (repeatable)."),
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option(help="sshd's log, for the agent to ship (default: DIRECTORY/sshd.log)."),
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Configure and run OpenSSH's sshd as the bastion: certificates and TOTP, forwarding only."""
    import pwd  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from garrison.ssh.bastion import Bastion, install, run  # noqa: PLC0415

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

    authority = authority_for(settings)
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
    raise typer.Exit(run(setup, log or folder / "sshd.log"))


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
