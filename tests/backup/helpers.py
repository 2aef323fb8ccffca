"""A real PostgreSQL cluster and OpenPGP keys for the backup tests.

The cluster runs as the ``postgres`` OS user (PostgreSQL refuses root) in a directory of its
own under /tmp, with its socket in its data directory and no TCP listener. Its
archive_command runs Garrison as that user, so .venv/bin/python must be runnable by it
(scripts/bootstrap.sh builds the venv from Debian's Python for this).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from garrison.backup.postgres import program
from tests.ssh.helpers import free_port

OWNER = "postgres"


def as_postgres(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # the test's own commands
        ["runuser", "-u", OWNER, "--", *argv],
        capture_output=True, text=True, check=False, **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip


@dataclass
class Cluster:
    """A running test cluster."""

    pgdata: Path
    port: int

    @property
    def host(self) -> str:
        return str(self.pgdata)

    def sql(self, query: str, database: str = "postgres") -> str:
        done = as_postgres(
            [program("psql"), "-h", self.host, "-p", str(self.port), "-d", database,
             "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query],
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return done.stdout.strip()

    def start(self) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses='' -c unix_socket_directories='{self.pgdata}'"
        )
        done = as_postgres(
            [program("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.pgdata / "server.log"),
             "-o", options, "-w", "start"],
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(done.stderr + self.log)

    def stop(self) -> None:
        as_postgres([program("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"])

    @property
    def log(self) -> str:
        path = self.pgdata / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_archived(self, timeout: float = 30.0) -> None:
        """Switch to a new WAL file and wait until the old one is archived."""
        switched = self.sql("SELECT pg_walfile_name(pg_switch_wal())")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= switched:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{switched} was not archived: {self.log[-3000:]}")


@contextmanager
def workspace() -> Iterator[Path]:
    """A directory the postgres user may enter (pytest's tmp_path is root's alone)."""
    work = Path(tempfile.mkdtemp(prefix="garrison-backup-"))
    os.chmod(work, 0o755)  # noqa: S103  # postgres enters it; what is inside is its own
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def owned(path: Path) -> Path:
    """`path`, made and given to the postgres user."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, OWNER, OWNER)
    os.chmod(path, 0o700)
    return path


@contextmanager
def cluster(work: Path) -> Iterator[Cluster]:
    """initdb, started; stopped and removed afterwards."""
    pgdata = owned(work / "pgdata")
    made = as_postgres(
        [program("initdb"), "-D", str(pgdata), "--auth-local=peer", "--auth-host=reject",
         "-E", "UTF8", "--locale=C.UTF-8"],
    )  # fmt: skip
    if made.returncode != 0:
        raise RuntimeError(made.stderr)
    running = Cluster(pgdata, free_port())
    try:
        yield running
    finally:
        running.stop()


def gpg_keys(folder: Path) -> tuple[Path, Path]:
    """A fresh OpenPGP key pair (no passphrase): (public key file, private key file)."""
    home = folder / "gnupg"
    home.mkdir(mode=0o700, parents=True)
    base = [
        "gpg",
        "--batch",
        "--homedir",
        str(home),
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]
    uid = "Garrison backup test <backup@example.test>"
    subprocess.run(
        [*base, "--quick-gen-key", uid, "future-default", "default", "never"],
        check=True, capture_output=True,
    )  # fmt: skip
    public, private = folder / "backup-public.asc", folder / "backup-private.asc"
    public.write_bytes(
        subprocess.run([*base, "--armor", "--export"], check=True, capture_output=True).stdout
    )
    private.write_bytes(
        subprocess.run(
            [*base, "--armor", "--export-secret-keys"], check=True, capture_output=True
        ).stdout
    )
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    return public, private


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """An S3-compatible server on loopback (moto's, a stand-in: no real S3 runs here); the
    environment that points boto3 at it, with a bucket ``backups`` made."""
    import boto3  # noqa: PLC0415

    port = free_port()
    server = subprocess.Popen(  # the test's own server
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # the stand-in's
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        client = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                client.create_bucket(Bucket="backups")
                break
            except Exception:  # not listening yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield env
    finally:
        server.terminate()
        server.wait(10)
