"""`garrison demo`: feed a generated attack through the running pipeline; `demo remove` undoes it.

The demo writes its log files under ``<data dir>/demo/logs``, enrols the made-up host
``demo-web-1`` and runs a real agent for it, so the lines go agent -> collector (mTLS) -> log
store (stream ``demo``) -> detector -> findings and notifications, as a real host's would.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from garrison.cli.common import (
    ConfigOption,
    DataDirOption,
    audit_cli,
    load_settings,
    migrate,
    out,
    setup_django,
)
from garrison.core.errors import GarrisonError
from garrison.core.settings import Settings
from garrison.demo import DEMO_HOST, DEMO_RETENTION_DAYS, DEMO_STREAM, DemoLog, scenario

app = typer.Typer(
    help="A generated attack through the running pipeline, to see Garrison work.",
    invoke_without_command=True,
)
SHIP_SECONDS = 30.0


def _demo_dir(settings: Settings) -> Path:
    return settings.data_path / "demo"


def _write_logs(folder: Path, logs: list[DemoLog]) -> list[str]:
    """The scenario's files, written whole; the agent's ``--watch`` specs for them."""
    folder.mkdir(parents=True)
    specs = []
    for log in logs:
        path = folder / log.name
        path.write_text("".join(f"{line}\n" for line in log.lines))
        specs.append(f"{log.format}:{DEMO_STREAM}:{path}")
    return specs


def _enrol(identity_dir: Path) -> None:
    from garrison.agent.identity import Identity, new_key_and_csr  # noqa: PLC0415
    from garrison.server.demo import do_enroll_demo_host  # noqa: PLC0415  # after setup

    key_pem, csr = new_key_and_csr(DEMO_HOST)
    joined = do_enroll_demo_host(csr)
    Identity(identity_dir).save(key_pem, joined.certificate_pem.encode(), joined.ca_pem.encode())


def _ship(settings: Settings, state: Path, specs: list[str], lines: int) -> None:
    """Run the demo host's agent until every line is read and acknowledged by the collector."""
    from garrison.agent.daemon import Agent, Source  # noqa: PLC0415
    from garrison.cli.agent import local_collector  # noqa: PLC0415
    from garrison.pipeline.ship import ShipError  # noqa: PLC0415

    url = local_collector(settings)
    agent = Agent(state, url, [Source.parse(spec) for spec in specs])
    try:
        agent.shipper.request("GET", "/v1/health")
    except ShipError as exc:
        agent.close()
        raise GarrisonError(
            f"the collector does not answer: {exc}",
            hint="is `garrison up` running? Start it, then run `garrison demo` again",
        ) from None
    columns = [TextColumn("shipping through the collector"), BarColumn(), MofNCompleteColumn()]
    try:
        with Progress(*columns, console=out, transient=True) as bar:
            task = bar.add_task("lines", total=lines)
            deadline = time.monotonic() + SHIP_SECONDS
            while True:
                read, _ = agent.step()
                bar.advance(task, read)
                pending = sum(f.spool.count for f in agent.followers)
                if not read and not pending:
                    return
                if time.monotonic() > deadline:
                    raise GarrisonError(
                        f"the collector at {url} did not take the demo's events",
                        hint="is `garrison up` running? Start it, then run `garrison demo` again",
                    )
                if not read:
                    threading.Event().wait(0.5)
    finally:
        agent.close()


def _expected(settings: Settings, logs: list[DemoLog]) -> int:
    """How many findings the detector should make of the scenario: the same rules and
    allowlist, run here on the same lines."""
    from garrison.detect import rules  # noqa: PLC0415  # only the demo needs them here
    from garrison.detect.engine import Engine  # noqa: PLC0415
    from garrison.detect.intel import IPLists  # noqa: PLC0415
    from garrison.events.parsers import events_parser  # noqa: PLC0415

    engine = Engine(
        rules.load([Path(p) for p in settings.detect_rules]),
        lists=IPLists(settings.detect_allowlist, None),
    )
    for log in logs:
        parse = events_parser(log.format)
        for line in log.lines:
            for event in parse(line):
                engine.process(event)
    return len(engine.all_findings())


def _wait_for_findings(expected: int, timeout: float) -> int:
    from garrison.server.findings.models import Finding  # noqa: PLC0415  # after setup

    found = Finding.objects.filter(host=DEMO_HOST)
    columns = [TextColumn("waiting for the detector"), BarColumn(), MofNCompleteColumn()]
    with Progress(*columns, console=out, transient=True) as bar:
        task = bar.add_task("findings", total=expected)
        deadline = time.monotonic() + timeout
        while (count := found.count()) < expected and time.monotonic() < deadline:
            bar.update(task, completed=count)
            threading.Event().wait(0.5)
    return count


def _show(settings: Settings) -> None:
    from garrison.server.findings.models import Finding  # noqa: PLC0415  # after setup

    table = Table(title=f"Findings about {DEMO_HOST}", title_justify="left")
    for name in ("severity", "finding", "actor", "events"):
        table.add_column(name)
    for row in Finding.objects.filter(host=DEMO_HOST).order_by("-severity", "first_seen"):
        table.add_row(f"{row.severity:g}", escape(row.title), escape(row.src), str(row.count))
    out.print(table)
    console = escape(settings.console_url)
    out.print(f"See them in the console: [bold]{console}/findings/[/]")
    out.print(f"and the demo's log events: [bold]{console}/logs/?stream={DEMO_STREAM}[/]")
    out.print("Remove the demo with [bold]garrison demo remove[/].")


@app.callback()
def demo(
    ctx: typer.Context,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the detector's findings.", min=0)
    ] = 60.0,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Feed a generated SSH brute force (ending in a login), web scanner and port scan from the
    made-up host demo-web-1 through the running pipeline, then show the findings."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings(data_dir, config)
    setup_django()
    migrate()
    folder = _demo_dir(settings)
    shutil.rmtree(folder, ignore_errors=True)  # a second run starts over with fresh times
    logs = scenario(dt.datetime.now(dt.UTC))
    specs = _write_logs(folder / "logs", logs)
    _enrol(folder / "agent" / "identity")
    audit_cli(settings, "cli.demo.run", resource=DEMO_HOST)
    lines = sum(len(log.lines) for log in logs)
    _ship(settings, folder / "agent", specs, lines)
    out.print(
        f"{lines} demo log lines from {DEMO_HOST} are in the log store (stream {DEMO_STREAM})"
    )
    count = _wait_for_findings(_expected(settings, logs), wait)
    if count == 0:
        raise GarrisonError(
            f"no findings about {DEMO_HOST} within {wait:g} s",
            hint="is the detector running? `garrison up` starts it",
        )
    _show(settings)


@app.command("remove")
def remove(data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Remove the demo: its host, its findings and its files. Its log events, in the
    append-only store, expire with the demo stream's retention (a day)."""
    settings = load_settings(data_dir, config)
    setup_django()
    migrate()
    from garrison.server.demo import do_remove_demo  # noqa: PLC0415  # after setup

    removed = do_remove_demo()
    shutil.rmtree(_demo_dir(settings), ignore_errors=True)
    audit_cli(
        settings,
        "cli.demo.remove",
        resource=DEMO_HOST,
        parameters={"findings": removed.findings, "hosts": removed.hosts},
    )
    out.print(
        f"removed {removed.findings} findings and the host {DEMO_HOST}; its log events in stream "
        f"{DEMO_STREAM} expire after {DEMO_RETENTION_DAYS} day (the store is append-only)"
    )
