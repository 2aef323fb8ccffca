"""The bastion's listener on loopback with the real sshd: limits, records, and stopping."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from garrison.events.bastion import PROGRAM
from garrison.events.parsers import events_parser
from garrison.ssh.listener import BastionLog, Listener
from tests.ssh.helpers import SSHD, free_port, new_key


@dataclass
class Served:
    """A listener serving in a thread."""

    listener: Listener
    thread: threading.Thread

    def stop(self) -> None:
        """Stop, and wait until every connection's record is written."""
        self.listener.stop()
        self.thread.join(20)
        assert not self.thread.is_alive()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Served]:
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    new_key(tmp_path / "host_ed25519")
    config = tmp_path / "sshd_config"
    config.write_text(
        f"HostKey {tmp_path / 'host_ed25519'}\nAuthorizedKeysFile none\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel DEBUG1\n"
    )
    log = BastionLog(tmp_path / "sshd.log")
    served = Listener(
        Path(SSHD), config, f"127.0.0.1:{free_port()}", log,
        max_connections=3, max_unauthenticated=2,
    )  # fmt: skip
    ready = threading.Event()
    thread = threading.Thread(target=served.serve, args=(ready,), daemon=True)
    thread.start()
    assert ready.wait(10)
    running = Served(served, thread)
    yield running
    running.stop()
    log.close()


def _connect(served: Served, source: str) -> socket.socket:
    client = socket.socket()
    client.settimeout(10)
    client.bind((source, 0))
    client.connect((served.listener.address, served.listener.port))
    return client


def _rest(client: socket.socket) -> bytes:
    """What the server still sends until it closes the connection (then closed here too)."""
    chunks = []
    with client:
        while chunk := client.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def _records(served: Served) -> list[dict[str, object]]:
    parse = events_parser("sshd")
    lines = served.listener.log.path.read_text().splitlines()
    return [e for line in lines for e in parse(line) if e.get("activity")]


def test_limits_per_source_and_in_all_then_stop_records_everyone(listener: Served) -> None:
    first, second = _connect(listener, "127.0.0.1"), _connect(listener, "127.0.0.1")
    for client in (first, second):
        assert client.recv(64).startswith(b"SSH-2.0-")  # each has its own sshd
    third = _connect(listener, "127.0.0.1")
    assert _rest(third) == b""  # refused: two unauthenticated ones from there already
    other = _connect(listener, "127.0.0.2")
    assert other.recv(64).startswith(b"SSH-2.0-")
    full = _connect(listener, "127.0.0.3")
    assert _rest(full) == b""  # refused: three connections in all
    listener.stop()
    for client in (first, second, other):
        _rest(client)  # sshd ended by the stop
    refused = [e for e in _records(listener) if e["activity"] == "refused"]
    assert [(e["src_ip"], e["reason"]) for e in refused] == [
        ("127.0.0.1", "2 unauthenticated connections from it"),
        ("127.0.0.3", "3 connections already open"),
    ]


def test_what_sshd_logs_is_kept_without_its_debug_lines(listener: Served) -> None:
    client = _connect(listener, "127.0.0.1")
    assert client.recv(64).startswith(b"SSH-2.0-")
    client.sendall(b"not ssh at all\r\n")
    assert _rest(client).startswith(b"Invalid SSH identification string.")
    listener.stop()
    text = listener.listener.log.path.read_text()
    assert "debug1:" not in text
    assert " sshd[" in text
    assert "Connection from 127.0.0.1" in text
    (closed,) = [e for e in _records(listener) if e["activity"] == "close"]
    assert (closed["process"], closed["outcome"], closed["src_ip"]) == (
        PROGRAM,
        "failure",
        "127.0.0.1",
    )
    assert isinstance(closed["bytes_in"], int)
    assert closed["bytes_in"] >= len("not ssh at all\r\n")
    assert isinstance(closed["bytes_out"], int)
    assert closed["bytes_out"] > 0
