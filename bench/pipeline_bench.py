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
import threading
import time
from pathlib import Path

from sshd_lines import sshd_line  # bench/, beside this script

from garrison.agent.daemon import Agent, Source
from garrison.agent.identity import Identity, new_key_and_csr
from garrison.core.paths import DataDir
from garrison.core.pki import CertificateAuthority
from garrison.core.secrets import KeyRing
from garrison.core.tls import mtls_server_context
from garrison.logstore.digests import Signer
from garrison.logstore.store import Store
from garrison.pipeline.collector import Collector


def main() -> None:
    """Run once and print the rate."""
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    work = Path(tempfile.mkdtemp(prefix="garrison-pipeline-"))
    rng = random.Random(7)
    try:
        data = DataDir(work / "data").ensure()
        keyring = KeyRing.load_or_create(data.kek)
        ca = CertificateAuthority(data.pki, keyring)
        ca.init()
        issued = ca.ensure_server("collector", ["127.0.0.1"])
        ctx = mtls_server_context(issued, keyring, "collector", ca.cert_path)
        store = Store(data.logstore, signer=Signer.load_or_create(work / "k.pem", b"b"))
        collector = Collector(
            store, host="127.0.0.1", port=0, ssl_context=ctx, revocations_path=data.revocations
        )
        threading.Thread(target=collector.serve_forever, daemon=True).start()
        state = work / "agent"
        key_pem, csr = new_key_and_csr("web-1")
        Identity(state / "identity").save(
            key_pem, ca.sign_client(csr, "web-1", 60), ca.cert_path.read_bytes()
        )
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
