"""SSH through the bastion against a direct connection: setup time and scp throughput.

The topology of the bastion test (tests/ssh/topology.py: client, bastion and private host in
network namespaces, `garrison ssh bastion` with certificate + TOTP, the host's sshd with the
user CA). Setup time is the wall time of `ssh ... true`: through the bastion (`ssh -J`, both
hops' key exchanges, the certificate at both, the TOTP check by `garrison ssh second-factor`)
against the same certificate straight to the host from the bastion's namespace. Each person's
code works once per 30 s, so every measured connection through the bastion is a different
person's. scp copies one file through each path. Last, the cost of the bastion's listener
alone (`garrison.ssh.listener`: Garrison accepts, then one `sshd -i` per connection): time to
sshd's banner through it and to sshd as a daemon, on loopback.

Run (root): .venv/bin/python bench/ssh_bench.py [connections] [megabytes]
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyotp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test topology's helpers

from tests.ssh.helpers import SSH, SSHD, free_port, new_key, run_logged
from tests.ssh.topology import ACCOUNT, BASTION, HOST, Topology, topology

from garrison.ssh.listener import BastionLog, Listener

SCP = "/usr/bin/scp"
BANNERS = 30


def _to_banner(port: int) -> float:
    """Median seconds from connect to sshd's banner, over `BANNERS` connections."""
    times = []
    for _ in range(BANNERS):
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.recv(64)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def listener_cost(work: Path) -> tuple[float, float]:
    """The bastion's own front door against sshd's: median time to the banner on loopback
    through `Listener` (`sshd -i` per connection) and to sshd run as a daemon."""
    new_key(work / "host_ed25519")
    config = work / "sshd_config"
    daemon_port, listener_port = free_port(), free_port()
    config.write_text(
        f"HostKey {work / 'host_ed25519'}\nAuthorizedKeysFile none\nUsePAM no\n"
        f"LogLevel DEBUG1\nListenAddress 127.0.0.1\nPort {daemon_port}\n"
        f"PidFile {work / 'sshd.pid'}\n"
    )
    log = BastionLog(work / "listener.log")
    listener = Listener(Path(SSHD), config, f"127.0.0.1:{listener_port}", log)
    ready = threading.Event()
    thread = threading.Thread(target=listener.serve, args=(ready,), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        through_listener = _to_banner(listener_port)
    finally:
        listener.stop()
        thread.join(20)
        log.close()
    daemon = run_logged([SSHD, "-D", "-e", "-f", str(config)], work)
    try:
        as_daemon = _to_banner(daemon_port)
    finally:
        daemon.terminate()
        daemon.wait(10)
    return through_listener, as_daemon


def _config(world: Topology, key: Path) -> Path:
    config = world.work / f"{key.name}.config"
    config.write_text(
        "Host *\n"
        f"  IdentityFile {key}\n  CertificateFile {key}-cert.pub\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {world.work / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
        "  PasswordAuthentication no\n  NumberOfPasswordPrompts 1\n"
    )
    return config


def _env(world: Topology, person: str) -> dict[str, str]:
    askpass = world.work / f"askpass-{person}"
    askpass.write_text(f"#!/bin/sh\necho {pyotp.TOTP(world.secrets[person]).now()}\n")
    askpass.chmod(0o755)
    return {
        "PATH": "/usr/bin:/bin",
        "SSH_ASKPASS": str(askpass),
        "SSH_ASKPASS_REQUIRE": "force",
        "DISPLAY": "none",
    }


def _timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, timeout=120, check=False)  # noqa: S603
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace"))
    return elapsed


def main() -> None:
    """Print the markdown rows for docs/benchmarks.md."""
    connections = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    megabytes = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    people = [f"bench{n}" for n in range(connections + 1)]
    with topology(people) as world:
        keys = {}
        for person in people:
            key = world.key(person)
            world.sign(key, "--principals", f"{person},role-operator", user=person)
            keys[person] = key
        jump = ["-J", f"{ACCOUNT}@{BASTION}:2222", f"root@{HOST}"]
        through, direct = [], []
        for person in people[:connections]:
            config = _config(world, keys[person])
            through.append(
                _timed(
                    world.net.argv("client", [SSH, "-F", str(config), *jump, "true"]),
                    _env(world, person),
                )
            )
            direct.append(
                _timed(world.net.argv("bastion", [SSH, "-F", str(config), f"root@{HOST}", "true"]))
            )
        payload = world.work / "payload"
        with payload.open("wb") as fh:
            for _ in range(megabytes):  # random: in case compression is on somewhere
                fh.write(os.urandom(1024 * 1024))
        last = people[-1]
        config = _config(world, keys[last])
        scp_through = _timed(
            world.net.argv(
                "client",
                [SCP, "-F", str(config), "-J", f"{ACCOUNT}@{BASTION}:2222", str(payload),
                 f"root@{HOST}:/dev/null"],
            ),
            _env(world, last),
        )  # fmt: skip
        scp_direct = _timed(
            world.net.argv(
                "bastion", [SCP, "-F", str(config), str(payload), f"root@{HOST}:/dev/null"]
            )
        )
    print(f"| path | connection setup, median | worst | scp of {megabytes} MiB |")
    print("| --- | ---: | ---: | ---: |")
    for name, times, copy in (
        ("through the bastion (ssh -J, certificate + TOTP)", through, scp_through),
        ("direct to the host (certificate)", direct, scp_direct),
    ):
        print(
            f"| {name} | {statistics.median(times) * 1000:.0f} ms | {max(times) * 1000:.0f} ms "
            f"| {megabytes / copy:.0f} MiB/s |"
        )
    with tempfile.TemporaryDirectory() as scratch:
        through_listener, as_daemon = listener_cost(Path(scratch))
    print(
        f"\nTime to sshd's banner on loopback, median of {BANNERS}: bastion listener with "
        f"sshd -i {through_listener * 1000:.1f} ms, sshd as a daemon {as_daemon * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
