"""Detection latency, live: a line written to a watched file -> a finding handed to the sink.

Real agent (tailing the file), real collector over mTLS on loopback, the log store, and the
detector, each in its own thread of this process, with their production idle intervals. Each
round writes a fast SSH brute force from a new source (10 failures); the latency is from the
write of its tenth line to the moment the detector hands the finding over (what the API then
serves from the database).

Run: .venv/bin/python bench/latency_bench.py [rounds]
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from garrison.agent.daemon import Agent, Source
from garrison.agent.identity import Identity, new_key_and_csr
from garrison.detect import rules
from garrison.detect.live import Detector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' loopback collector

from tests.pipeline.world import loopback_collector


class TimingSink:
    """Notes when each source's first finding arrives."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.event = threading.Event()

    def upsert(self, findings: list[dict[str, Any]]) -> list[str]:
        now = time.monotonic()
        for finding in findings:
            if finding["rule"] == "ssh_bruteforce_fast":
                self.seen.setdefault(str(finding.get("src_ip")), now)
        self.event.set()
        return []


def main() -> None:
    """Print the median and the worst latency over the rounds."""
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world = loopback_collector(root)
        ca, store, collector = world.ca, world.store, world.collector
        threading.Thread(target=collector.serve_forever, daemon=True).start()
        key_pem, csr = new_key_and_csr("web-1")
        state = root / "agent"
        Identity(state / "identity").save(
            key_pem, ca.sign_client(csr, "web-1", 60), ca.cert_path.read_bytes()
        )
        log = root / "auth.log"
        log.write_text("")
        host, port = collector.address
        agent = Agent(state, f"https://{host}:{port}", [Source(log, "sshd", "ssh")])
        sink = TimingSink()
        detector = Detector(store, rules.load(), sink, root / "detector.json", streams=["ssh"])
        stop = threading.Event()
        threads = [
            threading.Thread(target=agent.run, args=(stop,), daemon=True),
            threading.Thread(target=detector.run, args=(stop,), daemon=True),
        ]
        for thread in threads:
            thread.start()
        latencies = []
        start = dt.datetime.now(dt.UTC)
        for r in range(rounds):
            ip = f"198.51.100.{r + 1}"
            with log.open("a") as fh:
                for n in range(10):
                    moment = start + dt.timedelta(minutes=2 * r, seconds=n)
                    fh.write(
                        f"{moment:%b %e %H:%M:%S} web-1 sshd[{r * 100 + n}]: Failed password "
                        f"for root from {ip} port {4000 + n} ssh2\n"
                    )
                fh.flush()
                written = time.monotonic()
            deadline = written + 30
            while ip not in sink.seen and time.monotonic() < deadline:
                sink.event.wait(0.01)
                sink.event.clear()
            latencies.append(sink.seen.get(ip, float("inf")) - written)
        stop.set()
        for thread in threads:
            thread.join(10)
        agent.close()
        collector.shutdown()
        store.close()
    print(
        f"line -> finding: median {statistics.median(latencies):.2f} s, "
        f"worst {max(latencies):.2f} s over {rounds} brute forces"
    )


if __name__ == "__main__":
    main()
