"""`garrison admin`: accounts from the server's own shell (no default password anywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from garrison.cli.common import (
    DataDirOption,
    audit_cli,
    load_settings,
    migrate,
    out,
    read_secret_file,
    setup_django,
)
from garrison.core.errors import GarrisonError

app = typer.Typer(
    help="Create admins and one-time links from the server's shell.", no_args_is_help=True
)


@app.command("create")
def create(
    username: Annotated[str, typer.Option(help="Lower-case username.")],
    password_file: Annotated[
        Path,
        typer.Option(help="File holding the password (one line); never pass it as an argument."),
    ],
    role: Annotated[str, typer.Option(help="admin, operator, auditor or developer.")] = "admin",
    display_name: Annotated[str, typer.Option(help="Name shown in the console.")] = "",
    data_dir: DataDirOption = None,
) -> None:
    """Create an account with a password and TOTP; prints the TOTP secret and recovery codes."""
    password = read_secret_file(password_file, "password file")
    settings = load_settings(data_dir)
    setup_django()
    migrate()
    from django.db import transaction  # noqa: PLC0415  # after setup

    from garrison.server.accounts import actions, totp  # noqa: PLC0415

    try:
        with transaction.atomic():  # the account exists only if its audit event does
            enrolment = actions.do_create_person(
                None, username=username, role=role, password=password, display_name=display_name
            )
            audit_cli(settings, "cli.admin.create", resource=username, parameters={"role": role})
    except GarrisonError as exc:
        audit_cli(
            settings,
            "cli.admin.create",
            resource=username,
            parameters={"role": role},
            outcome="error",
            error_code=exc.code,
        )
        raise
    out.print(f"created {enrolment.user.username} ({enrolment.user.role})")
    out.print(f"totp_secret: {enrolment.totp_secret}")
    out.print(f"totp_uri: {totp.provisioning_uri(enrolment.totp_secret, enrolment.user.username)}")
    out.print("recovery_codes: " + " ".join(enrolment.recovery_codes))


@app.command("setup-link")
def setup_link(data_dir: DataDirOption = None) -> None:
    """Print a new first-admin link (only while no account exists)."""
    settings = load_settings(data_dir)
    setup_django()
    migrate()
    from django.db import transaction  # noqa: PLC0415

    from garrison.server.accounts import actions  # noqa: PLC0415  # after setup
    from garrison.server.accounts.api import setup_url  # noqa: PLC0415
    from garrison.server.accounts.models import SetupLink  # noqa: PLC0415

    with transaction.atomic():  # the link exists only if its audit event does
        token = actions.do_create_setup_link(
            None, purpose=SetupLink.Purpose.FIRST_ADMIN, minutes=settings.setup_link_minutes
        )
        audit_cli(settings, "cli.admin.setup-link")
    out.print(setup_url(token))
