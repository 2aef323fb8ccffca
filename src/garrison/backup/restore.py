"""Point-in-time restore: a base backup, the WAL after it, and PostgreSQL's own recovery.

The newest base backup that finished before the target is unsealed into the target directory
(straight from gpg into a tar reader), the WAL segments recovery needs are unsealed into a
staging directory beside it, and ``recovery.signal`` with ``restore_command`` (a plain ``cp``
from the staging directory), the recovery target and ``recovery_target_action = promote`` is
written. PostgreSQL then replays to the target and promotes; Garrison stops it cleanly, takes
its settings back out and removes the staging directory, so the target is a stopped cluster
at the point asked for that ``pg_ctl start`` runs with no Garrison process. Archiving is off
in the restored copy (it must not write into the repository it came from): ``garrison db
configure`` turns it on.

PostgreSQL ends recovery with an error when a time target lies after the last commit in the
WAL it was given; then every archived change before the target is already replayed, so
Garrison starts it once more without the target, and says so.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import re
import shutil
import subprocess  # nosec B404  # pg_ctl runs the recovery
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

from garrison.backup import postgres, wal
from garrison.backup.archive import quote_setting, remove_auto_conf, set_auto_conf
from garrison.backup.catalog import Catalog
from garrison.backup.repo import (
    BaseEntry,
    Repository,
    WalEntry,
    base_key,
    iso,
)
from garrison.backup.seal import BackupError, Opener
from garrison.core.errors import UsageError

START_TIMEOUT_S: Final = 60.0
COPY_BUFFER: Final = 1024 * 1024
RESTORE_MARKER: Final = "# Garrison: restore in progress (garrison db restore)"
COPY_MARKER: Final = "# Garrison: a restored copy does not archive; garrison db configure does"
_RECOVERY_SETTINGS: Final = {
    "restore_command",
    "recovery_target_time",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_timeline",
}
_STOPPING = re.compile(r"recovery stopping (?:before|after) .*?, time (.+)$", re.MULTILINE)
_LAST = re.compile(r"last completed transaction was at log time (.+)$", re.MULTILINE)
_REDO = re.compile(r"redo done at (\S+)")
_TIMELINE = re.compile(r"selected new timeline ID: (\d+)")
_NOT_REACHED = "recovery ended before configured recovery target was reached"
_READY = "database system is ready to accept connections"


@dataclass(frozen=True)
class Target:
    """Where to stop: one of a time, an LSN, a restore point's name, or the latest."""

    time: dt.datetime | None = None
    lsn: str | None = None
    name: str | None = None

    @property
    def latest(self) -> bool:
        return self.time is None and self.lsn is None and self.name is None


@dataclass(frozen=True)
class Restored:
    """What the restore reached."""

    base: str
    recovered_time: str  # the last transaction replayed (its commit time)
    recovered_lsn: str
    timeline: int
    target_reached: bool  # False: the target was after the last archived change


def choose_base(catalog: Catalog, target: Target) -> BaseEntry:
    """The base backup to restore `target` from; refuses a target outside the recoverable
    window (or in a hole a WAL gap leaves in it), saying what is restorable."""
    spans = catalog.intervals()
    if not spans:
        raise BackupError(
            "nothing in the repository is restorable yet",
            hint="take a base backup (garrison db backup) with archiving on",
        )
    if target.time is not None:
        base = catalog.base_for(target.time)
        if base is None:
            restorable = ", ".join(f"{iso(a)} to {iso(b)}" for a, b, _ in spans)
            raise UsageError(
                f"{iso(target.time)} is outside the recoverable window ({restorable})",
                hint="pick a time inside it (garrison db check shows the window and any gaps)",
            )
        return base
    usable = [b for _, _, b in spans]
    if target.lsn is not None:
        lsn = wal.parse_lsn(target.lsn)
        before = [b for b in usable if wal.parse_lsn(b.stop_lsn) <= lsn]
        if not before:
            raise UsageError(
                f"{target.lsn} is before the oldest restorable backup ends ({usable[0].stop_lsn})"
            )
        return before[-1]
    newest_end = max(end for _, end, _ in spans)
    reaching = [b for _, end, b in spans if end == newest_end]
    # A restore point may be anywhere: from the oldest base backup that reaches the newest WAL,
    # replay passes every point. The latest: from the newest, the least to replay.
    return reaching[0] if target.name is not None else reaching[-1]


def needed_wal(catalog: Catalog, base: BaseEntry, target: Target) -> list[WalEntry]:
    """The segments to stage for `target` (every one after the base backup without a gap, up
    to the target's segment for an LSN: a time says nothing certain about which segment holds
    it), and every timeline history file."""
    whole = run = catalog.run_from(base.start_wal)
    if target.lsn is not None:
        last = wal.segment_of(base.timeline, wal.parse_lsn(target.lsn))
        cut = next((i for i, e in enumerate(run) if e.name > last), len(run))
        run = run[: cut + 1]
    partial = catalog.partial_after(whole)
    if partial is not None and len(run) == len(whole):
        run = [*run, partial]  # streamed: the last segment, as far as it was received
    histories = [e for name, e in catalog.wal.items() if name.endswith(".history")]
    return run + histories


def _safe_member(member: tarfile.TarInfo) -> bool:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise BackupError(f"the base backup holds a path outside its directory: {member.name}")
    return member.isfile() or member.isdir()


def _unpack(opener: Opener, repo: Repository, key: str, target_dir: Path) -> None:
    """Unseal a base backup's tar straight into `target_dir`."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as sink:
            try:
                with repo.open_sealed(key) as sealed:
                    opener.open(sealed, sink, key)
            except BaseException as exc:  # handed to the reading thread
                failure.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        with (
            os.fdopen(read_fd, "rb") as source,
            tarfile.open(fileobj=source, mode="r|", copybufsize=COPY_BUFFER) as tar,  # type: ignore[call-overload]  # TarFile's own parameter
        ):
            for member in tar:
                if _safe_member(member):
                    tar.extract(member, target_dir, set_attrs=member.isfile())
            while source.read(1024 * 1024):
                pass  # the tar's padding: let gpg finish
    except tarfile.TarError as exc:
        producer.join()
        if failure:
            raise failure[0] from None
        raise BackupError(f"the base backup {key} is not a readable tar: {exc}") from None
    producer.join()
    if failure:
        raise failure[0]


class _Recovery:
    """PostgreSQL running recovery in the target directory."""

    def __init__(self, target_dir: Path, staging: Path, os_user: str | None) -> None:
        self.target_dir = target_dir
        self.staging = staging
        self.os_user = os_user
        self.log = staging / "recovery.log"
        self.pg_ctl = postgres.program("pg_ctl", target_dir)

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return postgres.run([self.pg_ctl, "-D", str(self.target_dir), *args], self.os_user)

    def run(self) -> str:
        """Start PostgreSQL and wait until it has promoted, or stopped; its log of this run.
        It may replay for as long as it likes while its log moves on."""
        options = f"-c listen_addresses='' -c unix_socket_directories='{self.staging}'"
        offset = self.log.stat().st_size if self.log.exists() else 0
        started = self._ctl("-l", str(self.log), "-o", options, "-W", "start")
        if started.returncode != 0:
            raise BackupError(f"PostgreSQL did not start: {started.stderr.strip()}")
        pid_file = self.target_dir / "postmaster.pid"
        seen_pid, text, moved = False, "", time.monotonic()
        while True:
            time.sleep(0.1)
            now = self.log.read_text(errors="replace")[offset:] if self.log.exists() else ""
            if now != text:
                text, moved = now, time.monotonic()
            if _READY in text and not (self.target_dir / "recovery.signal").exists():
                return text
            running = pid_file.exists()
            seen_pid = seen_pid or running
            if not running and (seen_pid or "FATAL" in text):
                return text  # it stopped: the log says why
            if time.monotonic() - moved > START_TIMEOUT_S:
                self.stop()
                raise BackupError(f"PostgreSQL made no progress in recovery: {_tail(text)}")

    def stop(self) -> None:
        if (self.target_dir / "postmaster.pid").exists():
            stopped = self._ctl("-m", "fast", "-w", "-t", "600", "stop")
            if stopped.returncode != 0:
                raise BackupError(f"PostgreSQL did not stop: {stopped.stderr.strip()}")


def _settings(target: Target, staging: Path) -> dict[str, str]:
    settings = {
        "restore_command": quote_setting(f'cp "{staging}/%f" "%p"'),
        "recovery_target_action": quote_setting("promote"),
        "recovery_target_timeline": quote_setting("current"),  # the WAL staged is the base's
        "archive_mode": quote_setting("off"),
    }
    if target.time is not None:
        moment = target.time.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        settings["recovery_target_time"] = quote_setting(moment)  # PostgreSQL's own form
        settings["recovery_target_inclusive"] = quote_setting("false")  # committed before it
    elif target.lsn is not None:
        settings["recovery_target_lsn"] = quote_setting(target.lsn)
    elif target.name is not None:
        settings["recovery_target_name"] = quote_setting(target.name)
    return settings


def _minimal_configuration(target_dir: Path) -> None:
    """Debian keeps postgresql.conf and pg_hba.conf in /etc: a restored copy gets its own, so
    that it starts with pg_ctl alone."""
    conf, hba = target_dir / "postgresql.conf", target_dir / "pg_hba.conf"
    if not conf.exists():
        conf.write_text("# Written by garrison db restore: the backup had no postgresql.conf.\n")
    if not hba.exists():
        hba.write_text(
            "# Written by garrison db restore: the backup had no pg_hba.conf.\nlocal all all peer\n"
        )
    (target_dir / "pg_ident.conf").touch()


def restore(
    repo: Repository,
    target: Target,
    target_dir: Path,
    opener: Opener,
    *,
    os_user: str | None,
) -> Restored:
    """Restore `repo` to `target` into `target_dir` (absent or empty)."""
    if target_dir.exists() and any(target_dir.iterdir()):
        raise UsageError(f"{target_dir} is not empty", hint="restore into a new directory")
    catalog = Catalog.read(repo)
    base = choose_base(catalog, target)
    segments = needed_wal(catalog, base, target)
    target_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(target_dir, 0o700)
    staging = target_dir.with_name(f".{target_dir.name}.garrison-restore")
    staging.mkdir(mode=0o700, exist_ok=True)
    try:
        _unpack(opener, repo, base_key(base.id), target_dir)
        for entry in segments:
            staged = staging / entry.name.removesuffix(wal.PARTIAL)
            with repo.open_sealed(entry.object) as sealed, staged.open("wb") as out:
                opener.open(sealed, out, entry.name)
        _minimal_configuration(target_dir)
        (target_dir / "recovery.signal").touch()
        _recovery_settings(target_dir, _settings(target, staging))
        _give(target_dir, staging, os_user)
        recovery = _Recovery(target_dir, staging, os_user)
        log = recovery.run()
        reached = True
        if _NOT_REACHED in log and target.time is not None:
            reached = False  # everything archived before the target is replayed: promote
            _recovery_settings(target_dir, _settings(Target(), staging))
            log = recovery.run()
        if (target_dir / "recovery.signal").exists():
            recovery.stop()
            raise BackupError(f"recovery did not finish: {_tail(log)}")
        recovery.stop()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    remove_auto_conf(target_dir, _RECOVERY_SETTINGS | {"archive_mode"}, RESTORE_MARKER)
    set_auto_conf(target_dir, {"archive_mode": quote_setting("off")}, COPY_MARKER)
    _give(target_dir, None, os_user)
    stopped_at = _STOPPING.search(log) or _LAST.search(log)
    redo, timeline = _REDO.search(log), _TIMELINE.search(log)
    return Restored(
        base=base.id,
        recovered_time=stopped_at[1].strip() if stopped_at else "",
        recovered_lsn=redo[1] if redo else "",
        timeline=int(timeline[1]) if timeline else base.timeline,
        target_reached=reached,
    )


def _recovery_settings(target_dir: Path, settings: dict[str, str]) -> None:
    """Exactly `settings` for recovery in postgresql.auto.conf (earlier targets removed)."""
    remove_auto_conf(target_dir, _RECOVERY_SETTINGS, RESTORE_MARKER)
    set_auto_conf(target_dir, settings, RESTORE_MARKER)


def _tail(log: str) -> str:
    """The last lines of PostgreSQL's log, which say why it stopped."""
    lines = [line for line in log.splitlines() if line.strip()]
    return " / ".join(lines[-6:]) or "(PostgreSQL logged nothing)"


def _give(target_dir: Path, staging: Path | None, os_user: str | None) -> None:
    """Hand the restored files to the OS user PostgreSQL runs as."""
    if os_user is None or os.geteuid() != 0:
        return
    entry = pwd.getpwnam(os_user)
    for root in (target_dir, staging):
        if root is None:
            continue
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)
