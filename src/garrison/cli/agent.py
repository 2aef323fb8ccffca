"""`garrison agent`: join the fleet with a one-time token, then ship this host's logs."""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from garrison.cli.common import DataDirOption, configure_logging, err, load_settings, out
from garrison.core.errors import GarrisonError, UsageError
from garrison.core.settings import Settings
from garrison.ssh.bastion import DEFAULT_DIRECTORY

app = typer.Typer(
    help="The host agent: join, then tail, parse and ship logs; serve this host's metrics."
)


@app.callback(invoke_without_command=True)
def agent(
    context: typer.Context,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print what `agent run` would use, and stop.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """The host agent."""
    if context.invoked_subcommand is not None:
        return
    if not print_config:
        out.print(context.get_help())
        raise typer.Exit(0)
    settings = load_settings(data_dir)
    metrics = settings.agent_metrics_listen
    out.print(f"collector: {escape(local_collector(settings))}")
    for spec in settings.agent_watch or default_watch():
        out.print(f"watch: {escape(spec)}")
    out.print(f"manage_ssh: {'yes' if settings.agent_manage_ssh else 'no'}")
    out.print(f"metrics: {f'http://{metrics}/metrics' if metrics else 'off'}")
    out.print(f"health: {escape(settings.agent_health) or 'default alert rules, no services'}")


def default_watch() -> list[str]:
    """What `garrison agent run` follows unless told: sshd's log and nginx's.

    sshd's messages come from ``/var/log/auth.log`` where a syslog daemon writes one, else from
    the journal (Debian's unit ``ssh.service``); files that do not exist yet are waited for.
    Where `garrison ssh bastion` runs with its default directory, its log is followed too.
    """
    auth = "sshd:ssh:/var/log/auth.log"
    if not Path("/var/log/auth.log").exists() and shutil.which("journalctl"):
        auth = "sshd:ssh:journal:ssh.service"
    watch = [auth, "nginx:web:/var/log/nginx/access.log", "nginx:web:/var/log/nginx/error.log"]
    bastion_log = DEFAULT_DIRECTORY / "sshd.log"
    if bastion_log.exists():  # `garrison ssh bastion` runs here
        watch.append(f"sshd:ssh:{bastion_log}")
    return watch


def local_collector(settings: Settings) -> str:
    """The collector of this machine's `garrison up`, on loopback."""
    return f"https://127.0.0.1:{settings.collector_listen_port}"


@app.command("join")
def join_cmd(
    server: Annotated[str, typer.Option(help="The console URL, https://HOST:PORT.")],
    token: Annotated[str, typer.Option(help="The join token from `garrison host add`.")],
    server_ca: Annotated[
        Path | None, typer.Option(help="CA file to trust for the server (Garrison's ca.crt).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Make this host's key, spend the join token, keep the first certificate."""
    from garrison.agent.identity import Identity, join  # noqa: PLC0415  # agent-only imports

    settings = load_settings(data_dir)
    identity = Identity(settings.data_path / "agent" / "identity")
    host = join(identity, server, token, server_ca)
    out.print(
        f"joined as {escape(host)}; certificate valid until {identity.not_after().isoformat()}"
    )


@app.command("run")
def run_cmd(
    collector: Annotated[
        str | None, typer.Option(help="https://HOST:PORT of the collector (default: this host).")
    ] = None,
    watch: Annotated[
        list[str] | None,
        typer.Option(
            help="FORMAT:STREAM:PATH to follow (repeatable); FORMAT may be regex:PATTERN. "
            "Default: agent_watch, else the auth and nginx logs."
        ),
    ] = None,
    manage_ssh: Annotated[
        bool | None,
        typer.Option(
            "--manage-ssh/--no-manage-ssh",
            help="Keep this host's sshd trusting Garrison's certificates (default: "
            "agent_manage_ssh).",
        ),
    ] = None,
    health: Annotated[
        Path | None,
        typer.Option(help="The health file: services, checks, runbooks, alerts (agent_health)."),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Follow the sources and ship them, watch this host's health and remedy what its
    runbooks allow, until SIGTERM or Ctrl-C."""
    from garrison.agent.daemon import Agent, Source  # noqa: PLC0415  # agent-only imports
    from garrison.agent.identity import Identity  # noqa: PLC0415
    from garrison.agent.leases import CollectorCoordinator  # noqa: PLC0415
    from garrison.agent.sshconf import HostSSH  # noqa: PLC0415
    from garrison.host import config as health_config  # noqa: PLC0415
    from garrison.host.monitor import HostMonitor  # noqa: PLC0415

    settings = load_settings(data_dir)
    configure_logging(settings)
    url = collector or local_collector(settings)
    sources = [Source.parse(spec) for spec in (watch or settings.agent_watch or default_watch())]
    manage = settings.agent_manage_ssh if manage_ssh is None else manage_ssh
    state = settings.data_path / "agent"
    health_file = health or (Path(settings.agent_health) if settings.agent_health else None)
    loaded = health_config.load(health_file, protected=[settings.data_path])
    monitor = HostMonitor(
        loaded.services,
        loaded.rules,
        state / "health",
        coordinator=CollectorCoordinator(url, Identity(state / "identity")),
        dry_run=loaded.dry_run,
    )
    agent = Agent(state, url, sources, ssh=HostSSH() if manage else None, monitor=monitor)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    metrics = None
    if settings.agent_metrics_listen:
        from garrison.agent.metrics_http import serve  # noqa: PLC0415

        try:
            metrics, _ = serve(settings.agent_metrics_listen, monitor)
        except OSError as exc:  # shipping logs matters more than /metrics: said, and on
            err.print(
                f"error: /metrics is off: cannot listen on "
                f"{escape(settings.agent_metrics_listen)}: {escape(exc.strerror or str(exc))} "
                "(set agent_metrics_listen to a free loopback port)"
            )
    out.print(
        f"agent shipping {len(sources)} sources to {escape(url)}, watching "
        f"{len(loaded.services)} services and {len(loaded.rules)} alert rules"
        + (" (dry-run)" if loaded.dry_run else "")
    )
    try:
        agent.run(stop)
    finally:
        agent.close()
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()


@app.command("rearm")
def rearm_cmd(
    subject: Annotated[
        str, typer.Argument(help="The service, or alert rule, whose runbook to re-arm.")
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Close an open circuit breaker: the running agent may remediate SUBJECT again (the
    agent reports it, and the collector audits it, with who asked)."""
    import getpass  # noqa: PLC0415

    from garrison.host.guard import Guard, matches  # noqa: PLC0415
    from garrison.host.monitor import request_rearm  # noqa: PLC0415

    settings = load_settings(data_dir)
    state = settings.data_path / "agent" / "health"
    open_now = Guard(state / "remediation.json").open_breakers()
    matching = [k for k in open_now if matches(subject, k)]
    if not matching:
        shown = ", ".join(sorted(open_now)) or "none"
        raise UsageError(f"no open breaker for {subject!r} (open: {shown})")
    request_rearm(state, subject, getpass.getuser())
    out.print(f"re-arm of {escape(', '.join(matching))} asked; the agent takes it within a second")


@app.command("status")
def status_cmd(data_dir: DataDirOption = None) -> None:
    """What the running agent watches here: each service and check, alerts firing, runbooks
    waiting to verify, open breakers (read from its loopback /metrics)."""
    import urllib.request  # noqa: PLC0415

    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    settings = load_settings(data_dir)
    if not settings.agent_metrics_listen:
        raise UsageError(
            "agent_metrics_listen is empty: the agent serves no /metrics to read its state from",
            hint="set agent_metrics_listen (default 127.0.0.1:9108) and restart the agent",
        )
    url = f"http://{settings.agent_metrics_listen}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # nosec B310  # loopback only (settings)
            text = reply.read().decode()
    except OSError as exc:
        raise GarrisonError(
            f"no agent answers at {url}: {getattr(exc, 'reason', exc)}",
            hint="is `garrison agent run` running here (or `garrison up`)?",
        ) from None
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]

    def rows(name: str) -> list[tuple[dict[str, str], float]]:
        return [(s.labels, s.value) for s in samples if s.name == name]

    table = Table("service", "zone", "state", "checks")
    checks = rows("garrison_check_up")
    for labels, value in rows("garrison_service_up"):
        mine = [
            f"{c['check']} {'ok' if ok else 'FAILING'}"
            for c, ok in checks
            if c["service"] == labels["service"]
        ]
        state = "[green]healthy[/]" if value else "[red]down[/]"
        table.add_row(
            escape(labels["service"]), escape(labels["zone"]), state, escape(", ".join(mine))
        )
    out.print(table if table.row_count else "no services (agent_health)")
    for labels, _ in rows("garrison_alert_firing"):
        where = f" on {labels['instance']}" if labels["instance"] else ""
        rule, severity = escape(labels["rule"]), labels["severity"]
        out.print(f"[yellow]alert firing[/]: {rule}{escape(where)} (severity {severity})")
    for labels, _ in rows("garrison_remediation_verifying"):
        out.print(f"verifying a fix: {escape(labels['subject'])}")
    for labels, _ in rows("garrison_remediation_breaker_open"):
        subject = labels["subject"]
        name = subject.split(":")[1] if ":" in subject else "all"
        out.print(
            f"[red]breaker open[/]: {escape(subject)} (`garrison agent rearm {escape(name)}`)"
        )
