"""`garrison host`: add hosts (printing their one-time join token), list and revoke them;
this host's metrics."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from garrison.cli.common import DataDirOption, audit_cli, load_settings, migrate, out, setup_django
from garrison.core.errors import NotFoundError, UsageError

app = typer.Typer(
    help="Hosts of the fleet: join tokens, revocation; this host's metrics.", no_args_is_help=True
)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="DNS-style host name.")],
    zone: Annotated[str, typer.Option(help="Failure domain the host lives in.")],
    data_dir: DataDirOption = None,
) -> None:
    """Register a host and print its one-time join token (expires with setup_link_minutes)."""
    settings = load_settings(data_dir)
    setup_django()
    migrate()
    from django.db import transaction  # noqa: PLC0415  # after setup

    from garrison.server.fleet import actions  # noqa: PLC0415

    with transaction.atomic():  # the host exists only if its audit event does
        host, token = actions.do_add_host(
            None, name=name, zone=zone, minutes=settings.setup_link_minutes
        )
        audit_cli(settings, "cli.host.add", resource=host.name, parameters={"zone": host.zone})
    out.print(f"added {escape(host.name)} in zone {escape(host.zone)}")
    out.print(f"join_token: {token}")
    out.print(
        f"on the host: garrison agent join --server {escape(settings.console_url)} --token {token}"
    )


@app.command("list")
def list_hosts(data_dir: DataDirOption = None) -> None:
    """Print every host with its state and certificate expiry."""
    load_settings(data_dir)
    setup_django()
    migrate()
    from garrison.server.fleet.models import Host  # noqa: PLC0415  # after setup

    table = Table("host", "zone", "state", "certificate until")
    for host in Host.objects.all():
        until = host.cert_not_after.isoformat() if host.cert_not_after else "-"
        table.add_row(escape(host.name), escape(host.zone), host.state, until)
    out.print(table)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The host to revoke.")],
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a host: its certificate and join tokens stop working at once."""
    settings = load_settings(data_dir)
    setup_django()
    migrate()
    from django.db import transaction  # noqa: PLC0415  # after setup

    from garrison.server.fleet import actions  # noqa: PLC0415
    from garrison.server.fleet.models import Host  # noqa: PLC0415

    host = Host.objects.filter(name=name.lower()).first()
    if host is None:
        raise NotFoundError(f"no host named {name!r}", hint="see `garrison host list`")
    with transaction.atomic():
        actions.do_revoke_host(None, host)
        audit_cli(settings, "cli.host.revoke", resource=host.name)
    out.print(f"revoked {escape(host.name)}")


@app.command("metrics")
def metrics(
    format_: Annotated[
        str, typer.Option("--format", help="json, or prometheus (the text format).")
    ] = "json",
    interval: Annotated[
        float, typer.Option(help="Seconds over which CPU and I/O rates are measured.")
    ] = 0.5,
) -> None:
    """One snapshot of this host's metrics (CPU, memory, disks, I/O, ...)."""
    import time  # noqa: PLC0415

    import msgspec  # noqa: PLC0415

    from garrison.host.exposition import registry, render  # noqa: PLC0415
    from garrison.host.metrics import Sampler  # noqa: PLC0415

    if format_ not in {"json", "prometheus"}:
        raise UsageError(f"unknown format {format_!r}", hint="use json or prometheus")
    sampler = Sampler()
    time.sleep(max(0.0, min(interval, 10.0)))  # rates need two readings
    if format_ == "prometheus":
        sys.stdout.write(render(registry(sampler)).decode())
    else:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(sampler.snapshot())).decode())
        sys.stdout.write("\n")
