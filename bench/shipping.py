"""What the shipping benches share: seeded sshd log lines (failed and accepted logins,
preauth closes), and a collector on loopback with an enrolled agent identity."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from garrison.agent.identity import Identity, new_key_and_csr
from garrison.core.paths import DataDir
from garrison.core.pki import CertificateAuthority
from garrison.core.secrets import KeyRing
from garrison.core.tls import mtls_server_context
from garrison.logstore.digests import Signer
from garrison.logstore.store import Store
from garrison.pipeline.collector import Collector

PREFIX = "Dec  1 10:{m:02d}:{s:02d} web-1 sshd[{pid}]: "
TEMPLATES = (
    PREFIX + "Failed password for invalid user {u} from 198.51.{a}.{b} port {port} ssh2",
    PREFIX + "Accepted publickey for deploy from 203.0.113.{b} port {port} ssh2: ED25519 SHA256:x",
    PREFIX + "Connection closed by authenticating user root 198.51.{a}.{b} port {port} [preauth]",
)


def sshd_line(rng: random.Random, i: int, second: int) -> str:
    """Line `i`, stamped `second` seconds after 10:00, with a newline."""
    return (
        rng.choice(TEMPLATES).format(
            m=second // 60 % 60,
            s=second % 60,
            pid=1000 + i % 5000,
            u=f"user{i % 97}",
            a=rng.randrange(256),
            b=rng.randrange(256),
            port=rng.randrange(1024, 65535),
        )
        + "\n"
    )


def start_collector(work: Path, agent_state: Path, host: str = "web-1") -> tuple[Store, Collector]:
    """A data dir under `work` with its CA, a collector thread on 127.0.0.1 (real mTLS,
    durable appends), and `host`'s agent identity saved in `agent_state`."""
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
    key_pem, csr = new_key_and_csr(host)
    Identity(agent_state / "identity").save(
        key_pem, ca.sign_client(csr, host, 60), ca.cert_path.read_bytes()
    )
    return store, collector
