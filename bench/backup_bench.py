"""Base backup and restore throughput against pgBackRest, and the measured recovery point.

One PostgreSQL 15 cluster (pgbench's tables, SCALE 140: about 2.1 GB), archiving into both
Garrison's repository and a pgBackRest repository (``archive_command`` runs both). Each tool
takes a full base backup with zstd level 3 and AES-256 (Garrison: zstd, then gpg to a
Curve25519 public key, which encrypts with AES-256; pgBackRest: ``compress-type=zst``,
``repo1-cipher-type=aes-256-cbc``) and restores it into a new directory until the copy is
promoted (Garrison: ``garrison db restore --latest``; pgBackRest: ``restore``, then PostgreSQL
replays with ``archive-get`` until it promotes). pgBackRest runs with ``process-max=1`` and
``2``; Garrison's pipeline is pg_basebackup, Python (zstd) and gpg, three processes.

Then the recovery point: a row is committed and the time until the repository holds it is
measured, with ``archive_timeout=300`` only (the WAL file is archived at the next switch), and
with ``garrison db stream`` (the streamed part is sealed every 5 s).

Run (root): .venv/bin/python bench/backup_bench.py [SCALE]
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the backup tests' helpers

from tests.backup.helpers import (
    Cluster,
    as_postgres,
    cluster,
    gpg_keys,
    owned,
    workspace,
)
from tests.cli import garrison

from garrison.backup.postgres import program
from garrison.backup.repo import Repository, iso
from garrison.backup.stream import Streamer

STANZA = "bench"
CIPHER_PASS = "benchmark-only-passphrase-0123456789"  # noqa: S105  # a throwaway repository


def _timed(what: str, run: subprocess.CompletedProcess[str] | None, began: float) -> float:
    elapsed = time.monotonic() - began
    if run is not None and run.returncode != 0:
        raise RuntimeError(f"{what} failed: {run.stdout}\n{run.stderr}")
    return elapsed


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _pgbackrest_conf(work: Path, db: Cluster, processes: int) -> Path:
    conf = work / f"pgbackrest-{processes}.conf"
    conf.write_text(
        "[global]\n"
        f"repo1-path={work / 'pgbackrest'}\nrepo1-cipher-type=aes-256-cbc\n"
        f"repo1-cipher-pass={CIPHER_PASS}\ncompress-type=zst\ncompress-level=3\n"
        f"process-max={processes}\nlog-level-console=warn\nlog-path={work / 'pgbackrest-log'}\n"
        f"lock-path={work / 'pgbackrest-lock'}\nspool-path={work / 'pgbackrest-spool'}\n"
        "start-fast=y\narchive-async=n\n"
        f"[{STANZA}]\npg1-path={db.pgdata}\npg1-port={db.port}\npg1-socket-path={db.host}\n"
    )
    conf.chmod(0o644)
    return conf


def _pgbackrest(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return as_postgres(["pgbackrest", f"--config={conf}", f"--stanza={STANZA}", *args])


def _promoted(target: Cluster) -> None:
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        done = as_postgres(
            [program("psql"), "-h", target.host, "-p", str(target.port), "-d", "postgres",
             "-X", "-A", "-t", "-c", "SELECT pg_is_in_recovery()"],
        )  # fmt: skip
        if done.stdout.strip() == "f":
            return
        time.sleep(0.2)
    raise RuntimeError("the pgBackRest restore never promoted")


def _recovery_point(db: Cluster, repo: Path, *, streaming: bool, work: Path) -> float:
    """Seconds from a commit until the repository holds it: with streaming, until a part of
    the streamed segment is sealed after the streamer flushed the commit; without, until a WAL
    file is archived after the commit."""
    stop = threading.Event()
    thread = None
    if streaming:
        streamer = Streamer(
            repo=Repository(repo), spool=owned(work / "spool"), host=db.host, port=db.port,
            user="postgres", slot="garrison", os_user="postgres", partial_every=5.0,
        )  # fmt: skip
        thread = threading.Thread(target=streamer.run, args=(stop,))
        thread.start()
        time.sleep(3)  # connected and caught up
    try:
        db.sql("CREATE TABLE IF NOT EXISTS rpo (at timestamptz)")
        db.sql("INSERT INTO rpo VALUES (now())")
        began, after = time.monotonic(), iso(dt.datetime.now(dt.UTC))
        lsn = db.sql("SELECT pg_current_wal_lsn()")
        query = f"SELECT coalesce(bool_or(flush_lsn >= '{lsn}'), false) FROM pg_stat_replication"  # noqa: S608  # the server's own LSN
        waiting_for_flush = streaming
        while time.monotonic() - began < 400:
            if waiting_for_flush:
                if db.sql(query) == "t":
                    waiting_for_flush, after = False, iso(dt.datetime.now(dt.UTC))
            elif any(
                e.archived_at > after and (e.name.endswith(".partial") or not streaming)
                for e in Repository(repo).wal_entries()
            ):
                return time.monotonic() - began
            time.sleep(0.1)
        raise RuntimeError("the commit never reached the repository")
    finally:
        stop.set()
        if thread is not None:
            thread.join(30)


def _prepare(work: Path, db: Cluster, scale: int) -> tuple[Path, Path, dict[int, Path], int]:
    """Fill the cluster, then archive into both repositories; (repo, private key, pgBackRest
    configurations by process-max, database bytes)."""
    public, private = gpg_keys(work)
    repo = work / "repo"
    garrison(
        "db", "init-repo", "--repo", str(repo), "--public-key", str(public), data_dir=work / "g"
    )
    for folder in ("repo", "pgbackrest", "pgbackrest-log", "pgbackrest-lock", "pgbackrest-spool"):
        owned(work / folder)
    db.start()
    began = time.monotonic()
    filled = as_postgres(
        [program("pgbench"), "-i", "-s", str(scale), "-q", "-h", db.host, "-p", str(db.port),
         "postgres"],
    )  # fmt: skip
    print(f"pgbench -i -s {scale}: {_timed('pgbench', filled, began):.0f} s", file=sys.stderr)
    size = int(db.sql("SELECT pg_database_size('postgres')"))
    db.stop()
    garrison(
        "db", "configure", "--pgdata", str(db.pgdata), "--repo", str(repo), data_dir=work / "g"
    )
    confs = {n: _pgbackrest_conf(work, db, n) for n in (1, 2)}
    auto = db.pgdata / "postgresql.auto.conf"
    text = auto.read_text()
    ours = next(line for line in text.splitlines() if line.startswith("archive_command"))
    command = ours.split("=", 1)[1].strip().strip("'")
    both = f"{command} && pgbackrest --config={confs[1]} --stanza={STANZA} archive-push %p"
    auto.write_text(text.replace(ours, f"archive_command = '{both}'"))
    db.start()
    _timed("stanza-create", _pgbackrest(confs[1], "stanza-create"), time.monotonic())
    return repo, private, confs, size


def _garrison_round(work: Path, db: Cluster, repo: Path, private: Path) -> tuple[float, int, float]:
    began = time.monotonic()
    ran = garrison("db", "backup", "--repo", str(repo), "--host", db.host, "--port",
                   str(db.port), data_dir=work / "g")  # fmt: skip
    backup = _timed("garrison db backup", ran, began)
    stored = _size(repo / "base")
    db.wait_archived()
    target = work / "restore-garrison"
    began = time.monotonic()
    ran = garrison("db", "restore", "--repo", str(repo), "--private-key", str(private),
                   "--latest", "--target", str(target), data_dir=work / "g")  # fmt: skip
    restore = _timed("garrison db restore", ran, began)
    shutil.rmtree(target)
    return backup, stored, restore


def _pgbackrest_round(work: Path, db: Cluster, conf: Path, port: int) -> tuple[float, int, float]:
    began = time.monotonic()
    backup = _timed("pgbackrest backup", _pgbackrest(conf, "backup", "--type=full"), began)
    labels = sorted((work / "pgbackrest" / "backup" / STANZA).glob("2*"))
    stored = _size(labels[-1])
    db.wait_archived()
    restored = owned(work / f"restore-{conf.stem}")
    began = time.monotonic()
    _timed(
        "pgbackrest restore",
        _pgbackrest(conf, "restore", f"--pg1-path={restored}", "--type=default",
                    "--recovery-option=recovery_target_action=promote", "--archive-mode=off"),
        began,
    )  # fmt: skip
    copy = Cluster(restored, port)
    copy.start()
    _promoted(copy)
    restore = time.monotonic() - began
    copy.stop()
    shutil.rmtree(restored)
    return backup, stored, restore


def main() -> None:
    """Print the markdown rows for docs/benchmarks.md."""
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 140
    with workspace() as work, cluster(work) as db:
        repo, private, confs, size = _prepare(work, db, scale)
        rows = [
            ("Garrison (pg_basebackup, zstd 3, gpg)", *_garrison_round(work, db, repo, private))
        ]
        for processes, conf in confs.items():
            name = f"pgBackRest 2.45 (zst 3, aes-256-cbc, process-max={processes})"
            rows.append((name, *_pgbackrest_round(work, db, conf, db.port + 1)))
        rpo_archive = _recovery_point(db, repo, streaming=False, work=work)
        rpo_stream = _recovery_point(db, repo, streaming=True, work=work)
    mib = size / 2**20
    print(f"Database: {mib:.0f} MiB (pgbench scale {scale})\n")
    print("| tool | base backup | MiB/s | stored | restore until promoted | MiB/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, backup, stored, restore in rows:
        print(
            f"| {name} | {backup:.1f} s | {mib / backup:.0f} | {stored / 2**20:.0f} MiB "
            f"| {restore:.1f} s | {mib / restore:.0f} |"
        )
    print("\n| recovery point | commit to repository |")
    print("| --- | ---: |")
    print(f"| archive_command, archive_timeout=300 | {rpo_archive:.1f} s |")
    print(f"| garrison db stream (partial sealed every 5 s) | {rpo_stream:.1f} s |")


if __name__ == "__main__":
    main()
