"""What the agent may do by itself to fix a failure: restart or reload a systemd unit, restart
a process, mark an instance out of its pool (a hook), or run the operator's command (the
declared cleanup is `garrison.host.cleanup`).

Each action says what it would do (`describe`) and does it (`run`), returning whether it
succeeded and what happened.
"""

from __future__ import annotations

import os
import subprocess  # nosec B404  # restart_process starts the declared command
import time
from dataclasses import dataclass
from typing import Final, Protocol

import psutil

from garrison.host import commands
from garrison.host.checks import SYSTEMCTL

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


def _run(argv: list[str]) -> Outcome:
    ran = commands.run(argv, COMMAND_TIMEOUT)
    if ran.code is None:
        return Outcome(False, ran.said)
    tail = f": {ran.said}" if ran.said else ""
    return Outcome(ran.ok, f"{' '.join(argv[:3])} exited {ran.code}{tail}")


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
    `stop_timeout_s`), then start `start` detached, in its own session, as `user` (by default
    the agent's), its output appended to `log_file`. Make `match` specific: every process
    whose command line holds it is stopped."""

    match: str
    start: tuple[str, ...]
    cwd: str | None = None
    log_file: str | None = None
    user: str | None = None
    stop_timeout_s: float = 10.0
    kind: str = "restart_process"

    def __post_init__(self) -> None:
        if len(self.match.strip()) < 3 or not self.start:
            raise ValueError("restart_process needs a specific match and a start command")

    def describe(self) -> str:
        who = f" as {self.user}" if self.user else ""
        return f"restart the process matching {self.match!r} with {' '.join(self.start)}{who}"

    def matching(self) -> list[psutil.Process]:
        """The running processes this restart would stop (never the agent itself)."""
        found = []
        for proc in psutil.process_iter(["cmdline", "pid"]):
            cmdline = " ".join(proc.info["cmdline"] or ())
            if self.match in cmdline and proc.pid != os.getpid():
                found.append(proc)
        return found

    def _stop(self, stopped: list[psutil.Process]) -> None:
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

    def run(self) -> Outcome:
        reap()
        try:  # before anything is stopped: a log that cannot be opened stops nothing
            out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        except OSError as exc:
            return Outcome(False, f"cannot open {self.log_file}: {exc.strerror or exc}")
        try:
            stopped = self.matching()
            self._stop(stopped)
            child = subprocess.Popen(  # noqa: S603  # nosec B603  # declared argv, no shell
                list(self.start),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
            )
        except (OSError, ValueError, KeyError) as exc:
            return Outcome(
                False, f"cannot start {self.start[0]}: {getattr(exc, 'strerror', None) or exc}"
            )
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
