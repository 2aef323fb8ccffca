"""`garrison db`: PostgreSQL backups with point-in-time recovery (see `garrison.backup`)."""

from __future__ import annotations

import datetime as dt
import sys
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

RepoOption = Annotated[Path, typer.Option("--repo", help="The backup repository (a directory).")]
OsUserOption = Annotated[
    str | None,
    typer.Option(
        "--os-user", help="OS user PostgreSQL's programs run as when root (default postgres)."
    ),
]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
    out.print(f"repository {escape(str(repo))} for key {made.info.fingerprint}")


@app.command("configure")
def configure(
    pgdata: Annotated[Path, typer.Option("--pgdata", help="The cluster's data directory.")],
    repo: RepoOption,
    archive_timeout: Annotated[
        int, typer.Option(help="Seconds before a partly filled WAL file is archived anyway.")
    ] = 300,
    data_dir: DataDirOption = None,
) -> None:
    """Write the archive settings into the cluster (they take effect at its next start)."""
    from garrison.backup.archive import configure as write_settings  # noqa: PLC0415

    settings = load_settings(data_dir)
    written = write_settings(pgdata, repo, _garrison_command(), timeout_s=archive_timeout)
    audit_cli(settings, "cli.db.configure", resource=str(pgdata), parameters={"repo": str(repo)})
    for name, value in written.items():
        out.print(f"{name} = {escape(value)}")
    out.print("Restart PostgreSQL for these to take effect.")


@app.command("archive-wal", hidden=True)
def archive_wal(
    repo: RepoOption,
    path: Annotated[Path, typer.Argument(help="%p: the WAL file.")],
    name: Annotated[str, typer.Argument(help="%f: its name.")],
) -> None:
    """PostgreSQL's archive_command: exit 0 only once the file is durable in the repository."""
    from garrison.backup.archive import archive_wal as archive  # noqa: PLC0415

    archive(repo, path, name, _now())


@app.command("backup")
def backup(
    repo: RepoOption,
    port: Annotated[int, typer.Option(help="The cluster's port.")] = 5432,
    host: Annotated[
        str, typer.Option(help="Socket directory or address of the cluster.")
    ] = "/var/run/postgresql",
    user: Annotated[
        str, typer.Option("--username", help="Database role (replication).")
    ] = "postgres",
    os_user: OsUserOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Take a base backup, streamed, compressed and encrypted into the repository."""
    from garrison.backup import base, postgres  # noqa: PLC0415
    from garrison.backup.repo import Repository  # noqa: PLC0415

    settings = load_settings(data_dir)
    store = Repository(repo)
    with err.status("base backup: pg_basebackup -> zstd -> gpg -> repository"):
        entry = base.take(
            store, host=host, port=port, user=user, os_user=os_user or postgres.default_os_user()
        )
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


@app.command("check")
def check(
    repo: RepoOption,
    port: Annotated[
        int | None, typer.Option(help="The cluster's port, for pg_stat_archiver.")
    ] = None,
    host: Annotated[str, typer.Option(help="Socket directory or address.")] = "/var/run/postgresql",
    os_user: OsUserOption = None,
) -> None:
    """Archiving health, the recoverable window, WAL gaps and every file's checksum."""
    from garrison.backup import postgres  # noqa: PLC0415
    from garrison.backup.catalog import Catalog, verify  # noqa: PLC0415
    from garrison.backup.health import archiver_status  # noqa: PLC0415
    from garrison.backup.repo import Repository, iso  # noqa: PLC0415

    store = Repository(repo)
    catalog = Catalog.read(store)
    healthy = True
    window = catalog.window()
    if window is None:
        out.print("recoverable_from: none")
        out.print("recoverable_to: none")
        healthy = False
    else:
        out.print(f"recoverable_from: {iso(window[0])}")
        out.print(f"recoverable_to: {iso(window[1])}")
    out.print(f"base_backups: {len(catalog.bases)}")
    out.print(f"wal_files: {len(catalog.wal)}")
    for gap in catalog.gaps():
        healthy = False
        out.print(f"gap: timeline {gap.timeline} {gap.first} to {gap.last} missing")
    for damage in verify(store, catalog):
        healthy = False
        out.print(f"damaged: {escape(damage.path)}: {damage.reason}")
    for loose in store.loose_files():
        out.print(f"incomplete: {escape(str(loose))} (an interrupted write; never counted)")
    if port is not None:
        status = archiver_status(host, port, os_user or postgres.default_os_user())
        for key, value in status.items():
            out.print(f"{key}: {value}")
        healthy = healthy and status.get("failed_since_last_archived") != "yes"
    raise typer.Exit(0 if healthy else 1)
