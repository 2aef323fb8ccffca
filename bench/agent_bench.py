"""The host agent's own overhead: CPU and memory of `garrison agent run`, idle and under load.

    .venv/bin/python bench/agent_bench.py [IDLE_SECONDS=60] [LOAD_SECONDS=30] [RATE=10000]

Sets up a temporary data dir, a CA and a collector (a thread of this process, 127.0.0.1, real
mTLS, durable appends), saves an agent identity under DATA/agent/identity, then starts the real
agent as a separate process (``garrison agent run --watch sshd:ssh:LOGFILE --no-manage-ssh``,
its /metrics on a free loopback port). It measures the agent process (and any children):

* idle: after a 5 s warm-up, CPU time (user + system) over IDLE_SECONDS as % of one core, and
  RSS sampled every second (median, max);
* load: a writer thread appends seeded sshd lines to LOGFILE at RATE lines/s in bursts every
  50 ms for LOAD_SECONDS; CPU and RSS as above, then how many events reached the store (waiting
  up to 30 s after the writer stops for all of them).

/metrics is scraped every 10 s in each phase, as a Prometheus would (its cost is part of what is
measured). Targets: idle CPU < 2% of a core, RSS < 100 MB. The peer, Debian's
prometheus-node-exporter when it is installed, is measured idle the same way (it only serves
metrics: no logs, checks, alerts or shipping). Everything runs on loopback; the work dir is
removed at the end.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from shipping import sshd_line, start_collector  # bench/, beside this script

from garrison.logstore.store import Store
from garrison.pipeline.collector import Collector

STREAM = "ssh"
WARMUP_SECONDS = 5.0
START_TIMEOUT = 60.0
DRAIN_TIMEOUT = 30.0
BURST_SECONDS = 0.05
MIB = 1024 * 1024
CPU_TARGET = 2.0  # % of one core, idle
RSS_TARGET = 100 * 1000 * 1000  # bytes
GARRISON = Path(sys.executable).with_name("garrison")
NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")
SCRAPE_SECONDS = 10.0


@dataclass
class Phase:
    """What one measurement window saw."""

    name: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    rss: list[int] = field(default_factory=list)
    metrics_status: str = "not scraped"
    lines_written: int = 0
    events_stored: int = 0

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu_seconds / self.seconds if self.seconds else 0.0


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def family(proc: psutil.Process) -> list[psutil.Process]:
    """The process and its live descendants."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [proc]


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU time of the process, its reaped children and its live descendants."""
    total = 0.0
    for member in family(proc):
        try:
            t = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def rss_bytes(proc: psutil.Process) -> int:
    """Resident memory of the process and its live descendants."""
    total = 0
    for member in family(proc):
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def scrape(url: str) -> str:
    """GET /metrics on loopback; 'HTTP 200, N bytes' or what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310  # our loopback URL
            body = reply.read()
            return f"HTTP {reply.status}, {len(body):,} bytes"
    except OSError as exc:
        return f"failed: {exc}"


def stored(store: Store) -> int:
    """Events in the ssh stream of the store (0 before the first batch arrives)."""
    if STREAM not in store.stream_names():
        return 0
    return store.stream(STREAM).next_offset


def measure(phase: Phase, proc: psutil.Process, seconds: float, metrics_url: str) -> None:
    """CPU over `seconds`, RSS every second, /metrics scraped every `SCRAPE_SECONDS` (as a
    Prometheus would)."""
    began = time.monotonic()
    cpu0 = cpu_seconds(proc)
    next_scrape = began
    tick = began
    while True:
        now = time.monotonic()
        if now - began >= seconds:
            break
        if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
            raise RuntimeError(f"{phase.name} exited during the measurement")
        phase.rss.append(rss_bytes(proc))
        if now >= next_scrape:
            phase.metrics_status = scrape(metrics_url)
            next_scrape += SCRAPE_SECONDS
        tick += 1.0
        time.sleep(max(0.0, min(tick, began + seconds) - time.monotonic()))
    phase.cpu_seconds = cpu_seconds(proc) - cpu0
    phase.seconds = time.monotonic() - began


def make_lines(count: int, rate: int, seed: int = 7) -> list[bytes]:
    """`count` seeded sshd lines, their timestamps advancing one second per `rate` lines."""
    rng = random.Random(seed)
    return [sshd_line(rng, i, i // max(rate, 1)).encode() for i in range(count)]


class Writer(threading.Thread):
    """Appends the lines to the log at `rate` lines/s, one burst every BURST_SECONDS."""

    def __init__(self, log: Path, lines: list[bytes], rate: int, seconds: float) -> None:
        super().__init__(name="writer", daemon=True)
        self.log, self.lines, self.rate, self.seconds = log, lines, rate, seconds
        self.written = 0
        self.took = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        with self.log.open("ab", buffering=0) as fh:
            while not self.stop.is_set():
                elapsed = time.monotonic() - began
                if elapsed >= self.seconds:
                    break
                due = min(len(self.lines), int(elapsed * self.rate))
                if due > self.written:
                    fh.write(b"".join(self.lines[self.written : due]))
                    self.written = due
                self.stop.wait(BURST_SECONDS)
            due = min(len(self.lines), int(self.seconds * self.rate))
            if due > self.written and not self.stop.is_set():  # the last burst, on schedule
                fh.write(b"".join(self.lines[self.written : due]))
                self.written = due
        self.took = time.monotonic() - began


def start_agent(
    work: Path, data: Path, port: int, log: Path, metrics: str
) -> subprocess.Popen[bytes]:
    """`garrison agent run` as its own process, its output in files of the work dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    env["GARRISON_DATA_DIR"] = str(data)
    env["GARRISON_AGENT_METRICS_LISTEN"] = metrics
    argv = [
        str(GARRISON),
        "agent",
        "run",
        "--data-dir",
        str(data),
        "--collector",
        f"https://127.0.0.1:{port}",
        "--watch",
        f"sshd:ssh:{log}",
        "--no-manage-ssh",
    ]
    with (work / "agent.out").open("wb") as out, (work / "agent.err").open("wb") as err:
        return subprocess.Popen(  # noqa: S603  # fixed argument list, our own CLI
            argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )


def wait_shipping(agent: subprocess.Popen[bytes], work: Path) -> None:
    """Until the agent prints that it ships (or exits, or START_TIMEOUT passes)."""
    deadline = time.monotonic() + START_TIMEOUT
    out = work / "agent.out"
    while time.monotonic() < deadline:
        if "agent shipping" in out.read_text(errors="replace"):
            return
        if agent.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(
        f"the agent did not start (exit {agent.poll()}):\n"
        + out.read_text(errors="replace")
        + (work / "agent.err").read_text(errors="replace")
    )


def stop_agent(agent: subprocess.Popen[bytes]) -> None:
    """SIGTERM our agent (by its PID), then SIGKILL if it does not exit within 10 s."""
    if agent.poll() is not None:
        return
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(timeout=10)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait(timeout=10)


def report(phases: list[Phase], rate: int, drain: str, cores: int) -> None:
    """The result table, the targets and the machine."""
    print()
    print(
        f"{'phase':<13} {'secs':>5} {'CPU % core':>10} {'RSS med MiB':>11} {'RSS max MiB':>11} "
        f"{'lines/s written':>15} {'events/s stored':>15}  /metrics"
    )
    for p in phases:
        med = statistics.median(p.rss) / MIB if p.rss else 0.0
        top = max(p.rss) / MIB if p.rss else 0.0
        written = f"{p.lines_written / p.seconds:,.0f}" if p.lines_written else "-"
        events = f"{p.events_stored / p.seconds:,.0f}" if p.lines_written else "-"
        print(
            f"{p.name:<13} {p.seconds:>5.1f} {p.cpu_percent:>10.2f} {med:>11.1f} {top:>11.1f} "
            f"{written:>15} {events:>15}  {p.metrics_status}"
        )
    load = next(p for p in phases if p.name == "load")
    print()
    print(f"load: target rate {rate:,} lines/s; {drain}")
    idle = phases[0]
    worst = max((r for p in phases if p.name != "node_exporter" for r in p.rss), default=0)
    print(
        f"targets: idle CPU < {CPU_TARGET:g}% of a core: "
        f"{'met' if idle.cpu_percent < CPU_TARGET else 'MISSED'} ({idle.cpu_percent:.2f}%); "
        f"RSS < {RSS_TARGET / 1e6:.0f} MB: {'met' if worst < RSS_TARGET else 'MISSED'} "
        f"(max {worst / 1e6:.1f} MB); load CPU {load.cpu_percent:.1f}% of a core"
    )
    print(
        f"machine: {cores} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}; collector and writer share this process"
    )


def node_exporter_phase(seconds: float) -> Phase | None:
    """The peer: Debian's Prometheus node exporter, idle, scraped like the agent (metrics only:
    no logs, checks or shipping); None when it is not installed."""
    if not NODE_EXPORTER.exists():
        print("peer: prometheus-node-exporter is not installed (apt-get install it to compare)")
        return None
    listen = f"127.0.0.1:{free_port()}"
    url = f"http://{listen}/metrics"
    peer = subprocess.Popen(  # noqa: S603  # a fixed local binary on loopback
        [str(NODE_EXPORTER), f"--web.listen-address={listen}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while scrape(url).startswith("failed") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(WARMUP_SECONDS)
        phase = Phase("node_exporter")
        print(f"peer: node_exporter idle, measuring {seconds:g} s ...", flush=True)
        measure(phase, psutil.Process(peer.pid), seconds, url)
        return phase
    finally:
        stop_agent(peer)


def run_load(
    proc: psutil.Process, store: Store, writer: Writer, seconds: float, metrics_url: str
) -> tuple[Phase, str]:
    """The load phase, then waiting for the store to hold every line; (phase, summary)."""
    load = Phase("load")
    before = stored(store)
    began = time.monotonic()
    cpu_began = cpu_seconds(proc)
    writer.start()
    measure(load, proc, seconds, metrics_url)
    writer.join(timeout=10)
    load.lines_written = writer.written
    load.events_stored = stored(store) - before
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while stored(store) - before < writer.written and time.monotonic() < deadline:
        time.sleep(0.05)
    done = time.monotonic()
    total = stored(store) - before
    cpu_total = cpu_seconds(proc) - cpu_began
    summary = (
        f"{writer.written:,} lines written in {writer.took:.1f} s, {total:,} events stored "
        f"({'all arrived' if total >= writer.written else 'NOT all arrived'}) "
        f"{done - began:.1f} s after the first write "
        f"(end-to-end {total / (done - began):,.0f} events/s); "
        f"agent CPU {cpu_total:.2f} s from first write to last event, "
        f"{1e4 * cpu_total / max(writer.written, 1):.2f} CPU-s per 10k lines"
    )
    return load, summary


def main() -> None:
    """Set up, measure idle then load, print the table; always clean up."""
    idle_seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    load_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    work = Path(tempfile.mkdtemp(prefix="garrison-agent-bench-"))
    agent: subprocess.Popen[bytes] | None = None
    collector: Collector | None = None
    store: Store | None = None
    writer: Writer | None = None
    try:
        store, collector = start_collector(work, work / "data" / "agent")
        port = collector.address[1]
        log = work / "auth.log"
        log.touch()
        writer = Writer(log, make_lines(int(load_seconds * rate), rate), rate, load_seconds)
        metrics_listen = f"127.0.0.1:{free_port()}"
        metrics_url = f"http://{metrics_listen}/metrics"

        began = time.monotonic()
        agent = start_agent(work, work / "data", port, log, metrics_listen)
        wait_shipping(agent, work)
        print(
            f"agent pid {agent.pid} shipping to https://127.0.0.1:{port} after "
            f"{time.monotonic() - began:.1f} s; /metrics at {metrics_url}"
        )
        proc = psutil.Process(agent.pid)
        time.sleep(WARMUP_SECONDS)

        idle = Phase("idle")
        print(f"idle: measuring {idle_seconds:g} s ...", flush=True)
        measure(idle, proc, idle_seconds, metrics_url)
        print(f"load: writing {rate:,} lines/s for {load_seconds:g} s ...", flush=True)
        load, summary = run_load(proc, store, writer, load_seconds, metrics_url)
        peer = node_exporter_phase(idle_seconds)
        report([idle, load, *([peer] if peer else [])], rate, summary, psutil.cpu_count() or 0)
        complaints = [
            line
            for line in (work / "agent.err").read_text(errors="replace").splitlines()
            if " WARNING " in line or " ERROR " in line or "Traceback" in line
        ]
        print(f"agent stderr: {len(complaints)} warnings/errors", *complaints[:5], sep="\n  ")
    finally:
        if writer is not None:
            writer.stop.set()
        if agent is not None:
            stop_agent(agent)
        if collector is not None:
            collector.shutdown()
        if store is not None:
            store.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
