"""`garrison up`: every role on this machine, supervised (the embedded default)."""

from __future__ import annotations

import re
import socket

from rich.markup import escape

from garrison.cli.common import (
    ConfigOption,
    DataDirOption,
    ListenOption,
    audit_cli,
    load_settings,
    migrate,
    out,
    setup_django,
)
from garrison.cli.server import CERT_NAME, server_hosts
from garrison.core.pki import HOST_RE
from garrison.core.registry import ROLES
from garrison.core.settings import Settings
from garrison.core.supervisor import Supervisor
from garrison.logstore.local import open_store


def _enroll_local_agent(settings: Settings) -> None:
    """Give this machine's own agent an identity (once; it renews itself from then on)."""
    from django.db import transaction  # noqa: PLC0415  # after setup

    from garrison.agent.identity import Identity, new_key_and_csr  # noqa: PLC0415
    from garrison.server.fleet import actions as fleet  # noqa: PLC0415

    identity = Identity(settings.data_path / "agent" / "identity")
    if identity.exists():
        return
    name = socket.gethostname().lower()
    if not re.fullmatch(HOST_RE, name):
        name = "localhost"
    key_pem, csr = new_key_and_csr(name)
    with transaction.atomic():
        joined = fleet.do_enroll_local_host(name, csr)
        audit_cli(settings, "cli.up.enroll-local-host", resource=name)
    identity.save(key_pem, joined.certificate_pem.encode(), joined.ca_pem.encode())


def up(
    data_dir: DataDirOption = None, config: ConfigOption = None, listen: ListenOption = None
) -> None:
    """Prepare the data dir, print the console URL (and setup link), run all roles."""
    settings = load_settings(data_dir, config, listen)
    with out.status("Preparing the data directory and database..."):
        setup_django()
        migrate()
        from django.conf import settings as django_settings  # noqa: PLC0415  # after setup
        from django.db import transaction  # noqa: PLC0415

        from garrison.server.accounts import actions  # noqa: PLC0415
        from garrison.server.accounts.api import setup_url  # noqa: PLC0415
        from garrison.server.accounts.models import SetupLink, User  # noqa: PLC0415
        from garrison.server.bootstrap import certificate_authority  # noqa: PLC0415

        ca = certificate_authority(django_settings.PREPARED)
        ca.ensure_server(CERT_NAME, server_hosts(settings))
        open_store(settings).close()  # make the digest key before two roles race to
        _enroll_local_agent(settings)
        link = None
        if not User.objects.filter(is_machine=False).exists():
            with transaction.atomic():
                token = actions.do_create_setup_link(
                    None,
                    purpose=SetupLink.Purpose.FIRST_ADMIN,
                    minutes=settings.setup_link_minutes,
                )
                audit_cli(settings, "cli.up.setup-link")
            link = setup_url(token)

    out.print(f"Garrison console: [bold]{escape(settings.console_url)}/[/]")
    out.print(f"Trust the internal CA to avoid browser warnings: {escape(str(ca.cert_path))}")
    if link:
        out.print(
            f"No account yet. Create the first admin within {settings.setup_link_minutes} "
            f"minutes (one use): [bold]{escape(link)}[/]"
        )
        out.print(
            "New here? Once signed in, run [bold]garrison demo[/] in another terminal: a made-up "
            "attack goes through the pipeline into findings (undo: [bold]garrison demo remove[/])."
        )
    out.print("Press Ctrl-C to stop.")
    Supervisor(ROLES, on_event=lambda text: out.print(f"[dim]{escape(text)}[/]")).run()
