"""Entry point: builds the Typer app from the command groups and maps errors to exit codes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from garrison import __version__
from garrison.cli import (
    admin,
    agent,
    collector,
    config,
    db,
    demo,
    detect,
    detector,
    host,
    logs,
    monitor,
    pki,
    server,
    ssh,
    store,
    up,
)
from garrison.cli.common import err
from garrison.core.errors import GarrisonError

app = typer.Typer(
    name="garrison",
    help="Garrison: the controls of a serious SaaS security page, for your own fleet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("server", help="Run the control plane (console and API) over HTTPS.")(server.server)
app.command("collector", help="Receive agents' batches over mTLS into the log store.")(
    collector.collector
)
app.command("detector", help="Follow the log store with the detection rules, into findings.")(
    detector.detector
)
app.command("monitor", help="Follow the agents' health records: history, zones, findings.")(
    monitor.monitor
)
app.command("up", help="Run every role on this machine, supervised (the embedded default).")(up.up)
app.add_typer(admin.app, name="admin")
app.add_typer(agent.app, name="agent")
app.add_typer(pki.app, name="pki")
app.add_typer(config.app, name="config")
app.add_typer(db.app, name="db")
app.add_typer(demo.app, name="demo")
app.add_typer(detect.app, name="detect")
app.add_typer(host.app, name="host")
app.add_typer(logs.app, name="logs")
app.add_typer(ssh.app, name="ssh")
app.add_typer(store.app, name="store")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"garrison {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Garrison command line."""


def run() -> None:
    """Run the CLI; a `GarrisonError` becomes a one-line message and its exit code."""
    try:
        code = app(standalone_mode=False)  # a `typer.Exit(n)` comes back as n, not raised
    except GarrisonError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors carry their own exit code
        code = getattr(exc, "exit_code", None)
        if code is None:
            raise
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        sys.exit(code)
    if isinstance(code, int) and code:
        sys.exit(code)
