"""`garrison config`: check and show the effective settings."""

from __future__ import annotations

import typer
from rich.table import Table

from garrison.cli.common import ConfigOption, DataDirOption, load_settings, out
from garrison.core.settings import ALLOWED, as_dict

app = typer.Typer(help="Check and show settings.", no_args_is_help=True)


@app.command("show")
def show(data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Print every setting with its effective value (secrets redacted)."""
    values = as_dict(load_settings(data_dir, config))
    table = Table("key", "value", "allowed")
    for key, value in values.items():
        table.add_row(key, str(value), ALLOWED[key])
    out.print(table)


@app.command("check")
def check(data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Exit 0 if the settings are valid, 2 with the problem otherwise."""
    load_settings(data_dir, config)
    out.print("settings are valid")
