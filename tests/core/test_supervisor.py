"""The supervisor restarts a role that dies, with growing backoff, and stops cleanly."""

from __future__ import annotations

import sys
import threading
import time

from garrison.core import supervisor
from garrison.core.registry import Role


class _ScriptRole(Role):
    """A role whose command is a Python snippet instead of a garrison subcommand."""

    def argv(self) -> list[str]:
        return [sys.executable, "-c", self.command[0]]


def test_restarts_with_backoff_then_stops(monkeypatch: object) -> None:
    """A role exiting at once is restarted after 1 s, then 2 s, ...; stop() ends the loop."""
    events: list[str] = []
    sup = supervisor.Supervisor(
        [_ScriptRole("flaky", "exits at once", ("raise SystemExit(3)",))],
        on_event=events.append,
        poll=0.05,
    )
    runner = threading.Thread(target=sup.run, kwargs={"install_signals": False})
    runner.start()
    deadline = time.monotonic() + 30
    while sup.children[0].restarts < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sup.stop()
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert sup.children[0].restarts >= 2
    assert any("exited with code 3; restarting in 1s" in e for e in events)
    assert any("exited with code 3; restarting in 2s" in e for e in events)


def test_stop_terminates_a_running_role() -> None:
    """A long-running role receives SIGTERM on stop and is reported stopped."""
    events: list[str] = []
    sup = supervisor.Supervisor(
        [_ScriptRole("sleeper", "sleeps", ("import time; time.sleep(600)",))],
        on_event=events.append,
        poll=0.05,
    )
    runner = threading.Thread(target=sup.run, kwargs={"install_signals": False})
    runner.start()
    deadline = time.monotonic() + 30
    while not any("started sleeper" in e for e in events) and time.monotonic() < deadline:
        time.sleep(0.05)
    sup.stop()
    runner.join(timeout=30)
    assert "stopped sleeper" in events
