"""What the agent may do by itself to fix a failure: restart or reload a systemd unit, restart
a process, run a declared cleanup, mark an instance out of its pool (a hook), or run the
operator's command.

Each action says what it would do (`describe`) and does it (`run`), returning whether it
succeeded and what happened, never raising. Cleanups touch only the paths they declare, and
never a PostgreSQL data directory, WAL or Garrison's own data (its log store among it): such a
path is refused when the cleanup is declared, and skipped if it appears under a declared one
later.
"""

from __future__ import annotations

import datetime as dt
import glob
import gzip
import os
import shutil
import stat
import subprocess  # nosec B404  # systemctl and the operator's declared commands
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import psutil

from garrison.host.checks import SYSTEMCTL

#: Never cleaned, nor anything inside them.
PROTECTED: Final = tuple(
    Path(p)
    for p in ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/root", "/sbin", "/sys",
              "/usr", "/var/lib/postgresql", "/var/lib/garrison")
)  # fmt: skip
#: A directory holding one of these is a database's or Garrison's: never cleaned.
MARKERS: Final = ("PG_VERSION", "pg_wal", "backup_label", "kek.key", "logstore")
COMMAND_TIMEOUT: Final = 120.0
#: Processes a restart started: kept to be reaped when they end (no zombies).
_STARTED: list[subprocess.Popen[bytes]] = []


def reap() -> None:
    """Collect the exit status of started processes that ended."""
    _STARTED[:] = [child for child in _STARTED if child.poll() is None]


@dataclass(frozen=True)
class Outcome:
    """What an action did."""

    ok: bool
    detail: str


class Action(Protocol):
    """Something the agent may do to fix a failure."""

    @property
    def kind(self) -> str: ...

    def describe(self) -> str: ...

    def run(self) -> Outcome: ...


def _run(argv: list[str], timeout: float = COMMAND_TIMEOUT) -> Outcome:
    try:
        done = subprocess.run(  # noqa: S603  # nosec B603  # declared argv, no shell
            argv, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Outcome(False, f"{argv[0]}: {exc}")
    said = (done.stderr or done.stdout).strip().splitlines()
    tail = f": {said[-1][:200]}" if said else ""
    return Outcome(done.returncode == 0, f"{' '.join(argv[:3])} exited {done.returncode}{tail}")


@dataclass(frozen=True)
class SystemdAction:
    """``systemctl restart|reload UNIT``."""

    verb: str
    unit: str

    @property
    def kind(self) -> str:
        return f"{self.verb}_unit"

    def describe(self) -> str:
        return f"systemctl {self.verb} {self.unit}"

    def run(self) -> Outcome:
        return _run([SYSTEMCTL, self.verb, self.unit])


@dataclass(frozen=True)
class RestartProcess:
    """Stop the processes whose command line contains `match` (SIGTERM, SIGKILL after
    `stop_timeout_s`), then start `start` detached, in its own session, as the agent's user."""

    match: str
    start: tuple[str, ...]
    cwd: str | None = None
    log_file: str | None = None
    stop_timeout_s: float = 10.0
    kind: str = "restart_process"

    def describe(self) -> str:
        return f"restart the process matching {self.match!r} with {' '.join(self.start)}"

    def matching(self) -> list[psutil.Process]:
        """The running processes this restart would stop (never the agent itself)."""
        found = []
        for proc in psutil.process_iter(["cmdline", "pid"]):
            cmdline = " ".join(proc.info["cmdline"] or ())
            if self.match in cmdline and proc.pid != os.getpid():
                found.append(proc)
        return found

    def run(self) -> Outcome:
        reap()
        stopped = self.matching()
        for proc in stopped:
            try:
                proc.terminate()
            except psutil.Error:
                continue
        _, alive = psutil.wait_procs(stopped, timeout=self.stop_timeout_s)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                continue
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            child = subprocess.Popen(  # noqa: S603  # nosec B603  # declared argv, no shell
                list(self.start),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return Outcome(False, f"cannot start {self.start[0]}: {exc.strerror or exc}")
        finally:
            if not isinstance(out, int):
                out.close()
        _STARTED.append(child)
        time.sleep(0.2)
        if child.poll() is not None:
            return Outcome(False, f"{self.start[0]} exited at once with {child.returncode}")
        return Outcome(True, f"stopped {len(stopped)}, started pid {child.pid}")


@dataclass(frozen=True)
class CommandAction:
    """A declared command (no shell); `kind` says what it is for (a failover hook is one)."""

    argv: tuple[str, ...]
    kind: str = "command"

    def describe(self) -> str:
        return " ".join(self.argv)

    def run(self) -> Outcome:
        return _run(list(self.argv))


def refuse_protected(path: Path, protected: Iterable[Path] = ()) -> None:
    """`ValueError` when a cleanup may not be declared on `path`."""
    resolved = path.resolve()
    for guarded in (*PROTECTED, *(p.resolve() for p in protected)):
        if resolved == guarded or (guarded != Path("/") and guarded in resolved.parents):
            raise ValueError(f"{path}: cleanups never touch {guarded} or anything inside it")
        if resolved in guarded.parents:
            raise ValueError(f"{path}: it holds {guarded}, which cleanups never touch")
    if any((resolved / marker).exists() for marker in MARKERS):
        raise ValueError(f"{path}: a database's or Garrison's data is there; never cleaned")


def _marked(directory: str, names: Iterable[str]) -> bool:
    return any(m in names for m in MARKERS) or Path(directory).name in MARKERS


@dataclass(frozen=True)
class Cleanup:
    """Free space where it was declared: rotate logs (compress each matching file to
    ``FILE.YYYYmmddTHHMMSS.gz`` and truncate it, the writer keeping its descriptor; keep the
    newest `keep` rotations of it) and empty cache directories (their contents, not following
    symbolic links, not crossing into another file system)."""

    rotate: tuple[str, ...] = ()
    clear: tuple[str, ...] = ()
    keep: int = 2
    protected: tuple[Path, ...] = field(default=())
    kind: str = "cleanup"

    def __post_init__(self) -> None:
        if not self.rotate and not self.clear:
            raise ValueError("a cleanup declares files to rotate or directories to clear")
        for pattern in self.rotate:
            if not pattern.startswith("/"):
                raise ValueError(f"{pattern}: rotate patterns are absolute paths")
            refuse_protected(Path(pattern).parent, self.protected)
        for directory in self.clear:
            if not directory.startswith("/"):
                raise ValueError(f"{directory}: clear directories are absolute paths")
            refuse_protected(Path(directory), self.protected)

    def describe(self) -> str:
        parts = [f"rotate {', '.join(self.rotate)}"] if self.rotate else []
        parts += [f"clear {', '.join(self.clear)}"] if self.clear else []
        return "; ".join(parts)

    def run(self) -> Outcome:
        freed = 0
        problems: list[str] = []
        skipped: list[str] = []
        for pattern in self.rotate:
            for name in sorted(glob.glob(pattern)):  # a declared pattern
                freed += self._rotate(Path(name), problems)
        for directory in self.clear:
            freed += self._clear(Path(directory), problems, skipped)
        said = [*problems, *(f"{s}: a database's or Garrison's data, left alone" for s in skipped)]
        detail = f"freed {freed} bytes" + (f"; {'; '.join(said[:5])}" if said else "")
        return Outcome(not problems, detail)

    def _rotate(self, path: Path, problems: list[str]) -> int:
        try:
            info = path.lstat()
        except OSError:
            return 0
        if (
            not stat.S_ISREG(info.st_mode)
            or path.suffix == ".gz"
            or _marked(str(path.parent), os.listdir(path.parent))
        ):
            return 0
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        target = path.with_name(f"{path.name}.{stamp}.gz")
        try:
            with path.open("rb") as source, gzip.open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1024 * 1024)
            os.truncate(path, 0)
            compressed = target.stat().st_size
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
            return 0
        freed = info.st_size - compressed
        rotations = sorted(path.parent.glob(f"{glob.escape(path.name)}.*.gz"))
        for old in rotations[: max(0, len(rotations) - self.keep)]:
            try:
                freed += old.stat().st_size
                old.unlink()
            except OSError as exc:
                problems.append(f"{old}: {exc.strerror or exc}")
        return freed

    def _clear(self, root: Path, problems: list[str], skipped: list[str]) -> int:
        try:
            device = root.lstat().st_dev
        except OSError:
            return 0
        freed = 0
        for directory, dirs, files in os.walk(root, topdown=True):
            if _marked(directory, [*dirs, *files]):
                skipped.append(directory)
                dirs.clear()
                continue
            dirs[:] = [d for d in dirs if os.lstat(os.path.join(directory, d)).st_dev == device]
            for name in files:
                entry = Path(directory, name)
                try:
                    size = entry.lstat().st_size
                    entry.unlink()
                except OSError as exc:
                    problems.append(f"{entry}: {exc.strerror or exc}")
                else:
                    freed += size
        kept = [Path(s) for s in skipped]
        for directory, dirs, _ in os.walk(root, topdown=False):
            for name in dirs:
                path = Path(directory, name)
                if any(path == k or k in path.parents for k in kept):
                    continue
                try:
                    path.rmdir()
                except OSError:
                    continue  # not empty: something was left alone in it
        return freed
