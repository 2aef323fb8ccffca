"""`garrison db`: PostgreSQL backups with point-in-time recovery (see `garrison.backup`)."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from garrison.cli.common import DataDirOption, audit_cli, err, load_settings, out
from garrison.core.errors import UsageError

app = typer.Typer(
    help="Back up PostgreSQL (WAL archiving, base backups, OpenPGP) and restore any point.",
    no_args_is_help=True,
)

RepoOption = Annotated[
    str, typer.Option("--repo", help="The backup repository: a directory, or s3://BUCKET/PREFIX.")
]
PortOption = Annotated[int, typer.Option(help="The cluster's port.")]
HostOption = Annotated[str, typer.Option(help="Socket directory or address of the cluster.")]
UserOption = Annotated[str, typer.Option("--username", help="Database role (replication).")]
FingerprintOption = Annotated[
    str,
    typer.Option(
        "--fingerprint",
        help="Seal only if the repository's public key is this one (pinned off the repository).",
    ),
]
OsUserOption = Annotated[
    str | None,
    typer.Option(
        "--os-user", help="OS user PostgreSQL's programs run as when root (default postgres)."
    ),
]


SCRATCH = Path("/var/tmp")  # noqa: S108  # nosec B108  # drills restore into a fresh mkdtemp in it


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _interval(text: str, what: str) -> dt.timedelta:
    from garrison.core.durations import duration  # noqa: PLC0415

    try:
        return dt.timedelta(seconds=duration(text))
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: how long-running commands learn to stop."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _garrison_command() -> list[str]:
    """How PostgreSQL runs this Garrison (its archive_command)."""
    return [sys.executable, "-m", "garrison"]


@app.command("init-repo")
def init_repo(
    repo: RepoOption,
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The OpenPGP public key backups are sealed to.")
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Make a directory a backup repository for one public key."""
    from garrison.backup.repo import Repository  # noqa: PLC0415

    settings = load_settings(data_dir)
    made = Repository.init(repo, public_key, _now())
    audit_cli(
        settings, "cli.db.init-repo", resource=str(repo), parameters={"key": made.info.fingerprint}
    )
    out.print(f"repository {escape(made.storage.describe())} for key {made.info.fingerprint}")


@app.command("configure")
def configure(
    pgdata: Annotated[Path, typer.Option("--pgdata", help="The cluster's data directory.")],
    repo: RepoOption,
    archive_timeout: Annotated[
        int, typer.Option(help="Seconds before a partly filled WAL file is archived anyway.")
    ] = 300,
    streaming: Annotated[
        str | None,
        typer.Option(
            help="Cap on the WAL a replication slot keeps for garrison db stream, e.g. 10GB."
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Write the archive settings into the cluster (they take effect at its next start)."""
    from garrison.backup.archive import configure as write_settings  # noqa: PLC0415

    settings = load_settings(data_dir)
    written = write_settings(
        pgdata, repo, _garrison_command(), timeout_s=archive_timeout, slot_keep=streaming
    )
    audit_cli(settings, "cli.db.configure", resource=str(pgdata), parameters={"repo": str(repo)})
    for name, value in written.items():
        out.print(f"{name} = {escape(value)}")
    out.print("Restart PostgreSQL for these to take effect.")


@app.command("archive-wal", hidden=True)
def archive_wal(
    repo: RepoOption,
    path: Annotated[Path, typer.Argument(help="%p: the WAL file.")],
    name: Annotated[str, typer.Argument(help="%f: its name.")],
    fingerprint: FingerprintOption = "",
) -> None:
    """PostgreSQL's archive_command: exit 0 only once the file is durable in the repository."""
    from garrison.backup.archive import archive_wal as archive  # noqa: PLC0415

    archive(repo, path, name, _now(), fingerprint)


@app.command("backup")
def backup(
    repo: RepoOption,
    port: PortOption = 5432,
    host: HostOption = "/var/run/postgresql",
    user: UserOption = "postgres",
    pgdata: Annotated[
        Path | None,
        typer.Option(
            "--pgdata", help="The cluster's data directory: its version's programs, its owner."
        ),
    ] = None,
    fingerprint: FingerprintOption = "",
    os_user: OsUserOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Take a base backup, streamed, compressed and encrypted into the repository."""
    from garrison.backup import base, postgres  # noqa: PLC0415
    from garrison.backup.repo import Repository  # noqa: PLC0415

    settings = load_settings(data_dir)
    store = Repository(repo, fingerprint=fingerprint)
    if os_user is None:
        os_user = postgres.owner_of(pgdata) if pgdata else postgres.default_os_user()
    with err.status("base backup: pg_basebackup -> zstd -> gpg -> repository"):
        entry = base.take(store, host=host, port=port, user=user, os_user=os_user, pgdata=pgdata)
    audit_cli(settings, "cli.db.backup", resource=entry.id, parameters={"repo": str(repo)})
    out.print(
        f"base backup {entry.id}: {entry.plain_size / 2**20:.1f} MiB sealed into "
        f"{entry.size / 2**20:.1f} MiB, WAL {entry.start_lsn} to {entry.stop_lsn} "
        f"(timeline {entry.timeline})"
    )


@app.command("restore")
def restore(
    repo: RepoOption,
    target: Annotated[Path, typer.Option("--target", help="New data directory to restore into.")],
    private_key: Annotated[
        Path, typer.Option("--private-key", help="The backup key's OpenPGP private key.")
    ],
    to: Annotated[str | None, typer.Option("--to", help="Recover to this time (ISO 8601).")] = None,
    lsn: Annotated[str | None, typer.Option("--lsn", help="Recover to this LSN.")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Recover to this restore point.")
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Recover all that is archived.")] = False,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="The private key's passphrase, in a file.")
    ] = None,
    os_user: OsUserOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Restore to a point: base backup, WAL, PostgreSQL's recovery; a stopped cluster."""
    from garrison.backup import postgres  # noqa: PLC0415
    from garrison.backup import restore as engine  # noqa: PLC0415
    from garrison.backup.repo import Repository, parse_iso  # noqa: PLC0415
    from garrison.backup.seal import opener  # noqa: PLC0415

    chosen = [x for x in (to, lsn, name) if x is not None] + (["latest"] if latest else [])
    if len(chosen) != 1:
        raise UsageError("say where to recover to: one of --to, --lsn, --name or --latest")
    settings = load_settings(data_dir)
    point = engine.Target(time=parse_iso(to) if to else None, lsn=lsn, name=name)
    store = Repository(repo)
    with opener(private_key, passphrase_file) as keys, err.status("restoring"):
        done = engine.restore(
            store, point, target.resolve(), keys, os_user=os_user or postgres.default_os_user()
        )
    audit_cli(
        settings,
        "cli.db.restore",
        resource=str(target),
        parameters={"repo": str(repo), "to": chosen[0], "base": done.base},
    )
    out.print(f"base_backup: {done.base}")
    out.print(f"recovered_to_time: {done.recovered_time}")
    out.print(f"recovered_lsn: {done.recovered_lsn}")
    out.print(f"timeline: {done.timeline}")
    if not done.target_reached:
        out.print("note: the target is after the last archived change; all of it is restored")
    where = escape(str(target))
    out.print(f"{where} is a stopped cluster: start it with pg_ctl -D {where} start")


EventsOption = Annotated[
    Path | None,
    typer.Option("--events", help="Append an event per step to this file, for the agent to ship."),
]


@app.command("check")
def check(
    repo: RepoOption,
    port: Annotated[
        int | None, typer.Option(help="The cluster's port, for pg_stat_archiver.")
    ] = None,
    host: HostOption = "/var/run/postgresql",
    pgdata: Annotated[
        Path | None,
        typer.Option("--pgdata", help="The data directory: is it on an encrypted volume?"),
    ] = None,
    os_user: OsUserOption = None,
    events: EventsOption = None,
) -> None:
    """Archiving health, the recoverable window, WAL gaps and every file's checksum."""
    from garrison.backup import postgres, report  # noqa: PLC0415
    from garrison.backup.health import assess  # noqa: PLC0415
    from garrison.backup.repo import Repository  # noqa: PLC0415

    cluster = (host, port) if port is not None else None
    health = assess(
        Repository(repo), cluster=cluster, os_user=os_user or postgres.default_os_user(),
        pgdata=pgdata,
    )  # fmt: skip
    for line in health.lines():
        out.print(escape(line))
    problems = health.problems
    summary = "; ".join(problems) or "healthy"
    report.append(
        events,
        report.event("check", "failure" if problems else "success", summary, **health.fields()),
    )
    raise typer.Exit(1 if problems else 0)


@app.command("expire")
def expire(
    repo: RepoOption,
    keep_days: Annotated[
        float, typer.Option(help="Every point of this many days stays restorable.")
    ] = 30,
    events: EventsOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Remove base backups and WAL no longer needed for the retention window."""
    from garrison.backup import report, retention  # noqa: PLC0415
    from garrison.backup.repo import Repository  # noqa: PLC0415

    settings = load_settings(data_dir)
    done = retention.expire(Repository(repo), _now(), dt.timedelta(days=keep_days))
    summary = f"{len(done.bases)} base backups and {len(done.wal)} WAL files expired"
    audit_cli(settings, "cli.db.expire", resource=str(repo), parameters={"keep_days": keep_days})
    report.append(
        events,
        report.event(
            "expire", "success", summary, base_backups=done.bases, wal_files=len(done.wal)
        ),
    )
    out.print(summary + ("" if done.anchor else " (nothing is old enough to expire yet)"))


@app.command("drill")
def drill(
    repo: RepoOption,
    private_key: Annotated[
        Path, typer.Option("--private-key", help="The backup key's OpenPGP private key.")
    ],
    scratch: Annotated[
        Path, typer.Option(help="Where the copy is restored (and removed).")
    ] = SCRATCH,
    sql: Annotated[
        str | None,
        typer.Option(
            help="SQL whose first value must be true on the copy: SELECT count(*) > 0 FROM t"
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="The private key's passphrase, in a file.")
    ] = None,
    every: Annotated[
        str | None, typer.Option(help="Drill again at this interval (e.g. 7d) until stopped.")
    ] = None,
    os_user: OsUserOption = None,
    events: EventsOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Restore a random point of the window into a scratch directory, start it, check it."""
    from garrison.backup import postgres, report  # noqa: PLC0415
    from garrison.backup.drill import drill as run_drill  # noqa: PLC0415
    from garrison.backup.repo import Repository  # noqa: PLC0415
    from garrison.backup.seal import opener  # noqa: PLC0415

    settings = load_settings(data_dir)
    interval = _interval(every, "--every") if every else None
    stop = _stop_on_signals()
    while True:
        with opener(private_key, passphrase_file) as keys, err.status("drill: restoring"):
            result = run_drill(
                Repository(repo), keys, scratch, os_user=os_user or postgres.default_os_user(),
                sql=sql,
            )  # fmt: skip
        summary = (
            f"restored {result.point} from {result.base} in {result.seconds:.1f} s and checked it"
            if result.ok
            else f"drill of {result.point or 'nothing'} failed: {result.reason}"
        )
        audit_cli(
            settings, "cli.db.drill", resource=str(repo),
            outcome="success" if result.ok else "failure", parameters={"point": result.point},
        )  # fmt: skip
        report.append(
            events,
            report.event(
                "drill", "success" if result.ok else "failure", summary, point=result.point,
                base=result.base, seconds=result.seconds, reason=result.reason,
            ),
        )  # fmt: skip
        (out if result.ok else err).print(escape(summary))
        if interval is None:
            raise typer.Exit(0 if result.ok else 1)
        if stop.wait(interval.total_seconds()):
            return


@app.command("run")
def run(
    repo: RepoOption,
    port: PortOption = 5432,
    host: HostOption = "/var/run/postgresql",
    user: UserOption = "postgres",
    pgdata: Annotated[
        Path | None, typer.Option("--pgdata", help="The data directory (disk encryption check).")
    ] = None,
    keep_days: Annotated[
        float, typer.Option(help="Every point of this many days stays restorable.")
    ] = 30,
    backup_every: Annotated[str, typer.Option(help="Base backup interval.")] = "24h",
    check_every: Annotated[str, typer.Option(help="Check interval.")] = "5m",
    fingerprint: FingerprintOption = "",
    os_user: OsUserOption = None,
    events: EventsOption = None,
) -> None:
    """The backup role on the database host: daily base backups, retention, checks."""
    from garrison.backup import postgres  # noqa: PLC0415
    from garrison.backup.repo import Repository  # noqa: PLC0415
    from garrison.backup.role import BackupRole  # noqa: PLC0415

    role = BackupRole(
        repo=Repository(repo, fingerprint=fingerprint), host=host, port=port, user=user,
        os_user=os_user or postgres.default_os_user(), pgdata=pgdata,
        keep=dt.timedelta(days=keep_days),
        backup_every=_interval(backup_every, "--backup-every"),
        check_every=_interval(check_every, "--check-every"), events=events,
    )  # fmt: skip
    stop = _stop_on_signals()
    err.print(f"backup role: {escape(str(repo))}, base backups every {backup_every}")
    role.run(stop)


@app.command("stream")
def stream(
    repo: RepoOption,
    spool: Annotated[Path, typer.Option(help="Where pg_receivewal writes (on the database host).")],
    port: PortOption = 5432,
    host: HostOption = "/var/run/postgresql",
    user: UserOption = "postgres",
    slot: Annotated[str, typer.Option(help="The replication slot.")] = "garrison",
    partial_every: Annotated[
        float, typer.Option(help="Seconds between seals of the segment being received.")
    ] = 5.0,
    fingerprint: FingerprintOption = "",
    os_user: OsUserOption = None,
    events: EventsOption = None,
) -> None:
    """Stream WAL continuously (pg_receivewal on a slot), sealed every few seconds."""
    from garrison.backup import postgres  # noqa: PLC0415
    from garrison.backup.repo import Repository  # noqa: PLC0415
    from garrison.backup.stream import Streamer  # noqa: PLC0415

    streamer = Streamer(
        repo=Repository(repo, fingerprint=fingerprint), spool=spool, host=host, port=port,
        user=user, slot=slot,
        os_user=os_user or postgres.default_os_user(), partial_every=partial_every,
        events=events,
    )  # fmt: skip
    stop = _stop_on_signals()
    err.print(f"streaming WAL into {escape(str(repo))} (slot {escape(slot)})")
    streamer.run(stop)
