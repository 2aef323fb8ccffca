"""End-to-end fixtures: real `garrison` processes on free local ports, and Debian's Chromium.

Every process is started with the current interpreter (`python -m garrison ...`), a fresh data
directory and a clean environment, and is stopped by its PID (terminate, then kill) on teardown.
Readiness is always polled with a bounded deadline; nothing here measures speed.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli import garrison_env

HOST = "127.0.0.1"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
CHROMIUM = os.environ.get("GARRISON_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTED_RE = re.compile(r"started server \(pid (\d+)\)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def stop_pid(proc: subprocess.Popen[str], timeout: float = STOP_TIMEOUT) -> int:
    """Terminate our child by PID, kill it if it does not exit in `timeout`; its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return int(proc.returncode)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _runs_on(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a Garrison process of our data dir (guards against PID reuse)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"GARRISON_DATA_DIR={data_dir}".encode() in environ


@dataclass
class Garrison:
    """A running `garrison` command: its process, address, data dir and captured stdout."""

    proc: subprocess.Popen[str]
    data_dir: Path
    port: int
    stderr_path: Path
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the console (no trailing slash)."""
        return f"https://{HOST}:{self.port}"

    @property
    def ca_path(self) -> Path:
        """The internal CA certificate of this data dir."""
        return self.data_dir / "pki" / "ca.crt"

    def trusting_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this data dir's CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def stderr(self) -> str:
        """What the process wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def describe(self) -> str:
        """Output for assertion messages."""
        return f"stdout:\n{''.join(self.output)}\nstderr:\n{self.stderr()[-4000:]}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_line(
        self, pattern: re.Pattern[str], timeout: float = START_TIMEOUT
    ) -> re.Match[str]:
        """The first not yet consumed stdout line matching `pattern`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            if match := pattern.search(line):
                return match
        pytest.fail(f"no line matching {pattern.pattern!r} within {timeout}s\n{self.describe()}")

    def get(self, path: str) -> int | None:
        """The HTTP status of GET `path` over verified TLS, or None if not reachable."""
        if not self.ca_path.is_file():
            return None
        try:
            with urllib.request.urlopen(  # noqa: S310  # https URL on 127.0.0.1
                f"{self.url}{path}", context=self.trusting_context(), timeout=5
            ) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
            return None

    def health(self) -> int | None:
        """The HTTP status of GET /healthz, or None if not reachable."""
        return self.get("/healthz")

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Poll /healthz until it answers 200, failing after `timeout` or if the process ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health() == 200:
                return
            if self.proc.poll() is not None:
                pytest.fail(f"garrison exited with {self.proc.returncode}\n{self.describe()}")
            time.sleep(0.25)
        pytest.fail(f"/healthz did not answer within {timeout}s\n{self.describe()}")

    def server_pids(self) -> list[int]:
        """Every server child PID `garrison up` reported starting so far."""
        return [int(m.group(1)) for line in self.output if (m := STARTED_RE.search(line))]

    def stop(self) -> int:
        """Stop the process by its PID, then any server child it left behind; the exit code."""
        code = stop_pid(self.proc)
        if self.reader is not None:
            self.reader.join(timeout=STOP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        for pid in self.server_pids():
            if pid_alive(pid) and _runs_on(pid, self.data_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return code


def start_garrison(
    command: str, data_dir: Path, port: int, *extra: str, env: dict[str, str] | None = None
) -> Garrison:
    """Start `garrison <command> --data-dir DIR --listen 127.0.0.1:PORT` in `data_dir`'s parent.

    `env` adds variables (e.g. ``GARRISON_PUBLIC_URL``) to the clean environment.
    """
    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir.parent / f"{command}-{port}.stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "garrison",
                command,
                "--data-dir",
                str(data_dir),
                "--listen",
                f"{HOST}:{port}",
                *extra,
            ],
            cwd=data_dir.parent,
            env=garrison_env(**(env or {})),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    running = Garrison(proc, data_dir, port, stderr_path)
    running.reader = threading.Thread(target=running._read, daemon=True)
    running.reader.start()
    return running


@pytest.fixture(scope="module")
def garrison_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Garrison]:
    """`garrison up` on a fresh data dir, healthy (its stdout lines stay readable)."""
    root = tmp_path_factory.mktemp("up")
    running = start_garrison("up", root / "data", free_port())
    try:
        running.wait_healthy()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def garrison_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Garrison]:
    """`garrison server` alone on a fresh data dir, healthy."""
    root = tmp_path_factory.mktemp("server")
    running = start_garrison("server", root / "data", free_port())
    try:
        running.wait_healthy()
        yield running
    finally:
        running.stop()
