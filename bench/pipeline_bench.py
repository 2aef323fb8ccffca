"""Agent -> collector -> store throughput on loopback, with real mTLS and durable appends.

    .venv/bin/python bench/pipeline_bench.py [LINES]

Generates seeded sshd lines into a file, runs a collector (thread) and an agent (this
process) on a temporary data dir, and reports lines/s from the first byte read to the last
event durable in the store.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from shipping import sshd_line, start_collector  # bench/, beside this script

from garrison.agent.daemon import Agent, Source


def main() -> None:
    """Run once and print the rate."""
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    work = Path(tempfile.mkdtemp(prefix="garrison-pipeline-"))
    rng = random.Random(7)
    try:
        state = work / "agent"
        store, collector = start_collector(work, state)
        log = work / "auth.log"
        with log.open("w") as fh:
            for i in range(lines):
                fh.write(sshd_line(rng, i, i // 60))
        host, port = collector.address
        agent = Agent(state, f"https://{host}:{port}", [Source(log, "sshd", "ssh")])
        started = time.perf_counter()
        while store.stream("ssh").next_offset < lines if "ssh" in store.stream_names() else True:
            agent.step()
        took = time.perf_counter() - started
        agent.close()
        collector.shutdown()
        store.close()
        print(f"agent -> collector -> store: {lines / took:,.0f} lines/s ({lines:,} sshd lines)")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
