"""Running a command on this host the one way checks, metrics and runbooks do: no shell, a
timeout, output captured, never raising."""

from __future__ import annotations

import subprocess  # nosec B404  # fixed or operator-declared argv, never a shell
from dataclasses import dataclass


@dataclass(frozen=True)
class Ran:
    """What a command did: its exit status (None when it could not run or timed out), its
    standard output, and its last line of output (or why it did not run)."""

    code: int | None
    stdout: str
    said: str

    @property
    def ok(self) -> bool:
        """It ran and exited 0."""
        return self.code == 0


def run(argv: list[str], timeout: float) -> Ran:
    """`argv` run to its end or `timeout`."""
    try:
        done = subprocess.run(  # noqa: S603  # nosec B603  # no shell; see the module
            argv, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Ran(None, "", f"{argv[0]}: {exc}")
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return Ran(done.returncode, done.stdout, lines[-1][:200] if lines else "")
