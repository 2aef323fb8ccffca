"""`garrison detect`: run the detection rules over log files, list them, run their tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Column, Table

from garrison.cli.common import DataDirOption, err, load_settings, out
from garrison.core.errors import UsageError
from garrison.core.paths import DataDir
from garrison.events.parsers import FORMATS, make_parser

if TYPE_CHECKING:
    from garrison.detect import rules as rules_mod

app = typer.Typer(help="Threat detection: Sigma rules over your logs.", no_args_is_help=True)
rules_app = typer.Typer(help="The detection rules: list them, run their tests.")
app.add_typer(rules_app, name="rules")

RulesOption = Annotated[
    list[Path] | None,
    typer.Option("--rules", help="A folder of Sigma rules (*.yml) to add (repeatable)."),
]
CatalogOption = Annotated[
    bool, typer.Option("--catalog/--no-catalog", help="Include Garrison's built-in rules.")
]


def _load(folders: list[Path] | None, catalog: bool) -> rules_mod.RuleSet:
    from garrison.detect import rules as rules_mod  # noqa: PLC0415  # pySigma: only when used

    for folder in folders or []:
        if not folder.is_dir():
            raise UsageError(f"rule folder {folder} does not exist")
    loaded = rules_mod.load(folders or [], catalog=catalog)
    for problem in loaded.problems:
        err.print(f"[yellow]rule skipped[/]: {escape(str(problem))}")
    return loaded


@app.command("replay")
def replay_cmd(
    files: Annotated[list[Path], typer.Argument(help="Log files, read in this order.")],
    format_: Annotated[
        str, typer.Option("--format", help="Input format: " + ", ".join(FORMATS) + ".")
    ],
    rules: RulesOption = None,
    catalog: CatalogOption = True,
    allow: Annotated[
        list[str] | None,
        typer.Option(help="An address or CIDR that never produces findings (repeatable)."),
    ] = None,
    ip_lists: Annotated[
        Path | None,
        typer.Option(help="A folder of IP lists (NAME.txt, NAME.csv) that tag events."),
    ] = None,
) -> None:
    """Print one finding per line (JSON), oldest first; needs no server and no data dir."""
    make_parser(format_)  # an unknown format stops here, named
    for file in files:
        if not file.is_file():
            raise UsageError(f"{file} is not a file")
    if ip_lists is not None and not ip_lists.is_dir():
        raise UsageError(f"ip list folder {ip_lists} does not exist")
    from garrison.detect.intel import IPLists  # noqa: PLC0415  # pySigma: only when used
    from garrison.detect.replay import replay  # noqa: PLC0415

    loaded = _load(rules, catalog)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    total = sum(f.stat().st_size for f in files)
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("detecting", total=total)
        findings, engine = replay(
            loaded,
            format_,
            files,
            progress=lambda n: bar.advance(task, n),
            lists=IPLists(allow or [], ip_lists) if allow or ip_lists else None,
        )
    encode = msgspec.json.Encoder().encode
    for finding in findings:
        sys.stdout.buffer.write(encode(finding.as_dict()) + b"\n")
    sys.stdout.flush()
    stats = engine.stats
    err.print(
        f"{stats['events']:,} events, {len(findings):,} findings"
        + (
            f", {stats['groups_evicted']:,} groups evicted by the cap"
            if stats["groups_evicted"]
            else ""
        )
    )


@rules_app.command("list")
def list_cmd(rules: RulesOption = None, catalog: CatalogOption = True) -> None:
    """The loaded rules: name, kind, severity, finding type and title."""
    from garrison.detect import rules as rules_mod  # noqa: PLC0415  # pySigma: only when used

    loaded = _load(rules, catalog)
    table = Table("kind", "severity", "finding type", "title", "file")
    table.columns.insert(0, Column("rule", no_wrap=True))
    for rule in loaded.rules:
        kind = (
            rule.kind.name.lower()
            if isinstance(rule, rules_mod.Correlation)
            else ("event" if rule.generate else "event (feeds a correlation)")
        )
        table.add_row(
            escape(rule.key),
            kind,
            f"{rule.severity:g} {rules_mod.severity_label(rule.severity)}",
            escape(rule.finding_type),
            escape(rule.title),
            escape(rule.path),
        )
    out.print(table)


@rules_app.command("test")
def rules_test_cmd(
    folder: Annotated[
        Path | None, typer.Argument(help="A rule folder (default: the built-in catalog).")
    ] = None,
) -> None:
    """Run the test cases written in the rules (`garrison.tests`); exit 1 if one fails."""
    from garrison.detect.ruletest import run_tests  # noqa: PLC0415  # pySigma: only when used

    loaded = _load([folder] if folder else [], catalog=folder is None)
    results = run_tests(loaded)
    failed = [r for r in results if not r.passed]
    for result in results:
        mark = "[green]pass[/]" if result.passed else "[red]FAIL[/]"
        detail = (
            f" ({escape(result.error)})"
            if result.error
            else ("" if result.passed else f" (expected {result.expected}, found {result.found})")
        )
        out.print(f"{mark} {escape(result.rule.key)}: {escape(result.name)}{detail}")
    untested = [r.key for r in loaded.rules if r.generate and not r.tests]
    if untested:
        out.print(f"[yellow]without tests[/]: {escape(', '.join(untested))}")
    out.print(f"{len(results) - len(failed)} of {len(results)} cases passed")
    if failed or loaded.problems:
        raise typer.Exit(1)


@app.command("notify-key")
def notify_key_cmd(data_dir: DataDirOption = None) -> None:
    """Print the HMAC key that signs notification webhooks (give it to the receiver)."""
    from garrison.cli.detector import notify_key  # noqa: PLC0415  # the detector role's helper

    settings = load_settings(data_dir)
    out.print(notify_key(DataDir(settings.data_path)).decode())
