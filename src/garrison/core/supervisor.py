"""Run roles as child processes, restart them with backoff, stop them cleanly."""

from __future__ import annotations

import logging
import signal
import subprocess  # nosec B404  # we start our own roles, never a shell
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from garrison.core.registry import Role

log = logging.getLogger("garrison.supervisor")

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 60.0
STOP_GRACE = 10.0


@dataclass
class _Child:
    role: Role
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = BACKOFF_START
    restart_at: float = 0.0
    restarts: int = 0


class Supervisor:
    """Keeps every role running until `stop()` (or SIGINT/SIGTERM)."""

    def __init__(
        self,
        roles: Sequence[Role],
        *,
        on_event: Callable[[str], None] = log.info,
        poll: float = 0.2,
    ) -> None:
        self.children = [_Child(role) for role in roles]
        self.on_event = on_event
        self.poll = poll
        self._stop = threading.Event()

    def _start(self, child: _Child) -> None:
        child.proc = subprocess.Popen(child.role.argv())  # noqa: S603  # nosec B603  # our own argv, no shell
        child.started_at = time.monotonic()
        self.on_event(f"started {child.role.name} (pid {child.proc.pid})")

    def stop(self, *_: object) -> None:
        """Ask the supervisor loop to stop every role and return."""
        self._stop.set()

    def run(self, *, install_signals: bool = True) -> None:
        """Start all roles and supervise them until stopped."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        for child in self.children:
            self._start(child)
        try:
            while not self._stop.wait(self.poll):
                self._tick(time.monotonic())
        finally:
            self._shutdown()

    def _tick(self, now: float) -> None:
        for child in self.children:
            if child.proc is None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._start(child)
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started_at > HEALTHY_AFTER:
                    child.backoff = BACKOFF_START
                continue
            child.proc = None
            child.restart_at = now + child.backoff
            self.on_event(
                f"{child.role.name} exited with code {code}; restarting in {child.backoff:.0f}s"
            )
            child.backoff = min(child.backoff * 2, BACKOFF_MAX)

    def _shutdown(self) -> None:
        running = [
            (c.role, c.proc) for c in self.children if c.proc is not None and c.proc.poll() is None
        ]
        for _, proc in running:
            proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for role, proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.on_event(f"{role.name} did not stop in {STOP_GRACE:.0f}s; killing it")
                proc.kill()
                proc.wait()
            self.on_event(f"stopped {role.name}")
