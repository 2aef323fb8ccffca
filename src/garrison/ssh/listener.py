"""The bastion's front door: Garrison accepts each connection and runs one sshd for it.

sshd, run as a daemon, logs concurrent connections into one stream that cannot be told apart,
and says neither where a ``ProxyJump`` went nor how many bytes it carried. So the bastion
listens itself and hands every accepted socket to its own ``sshd -i`` (inetd mode: sshd speaks
on stdin/stdout, Garrison reads its log on a pipe of that connection alone). The socket stays
open in Garrison too, which is how the bytes are known at the end: the kernel's ``TCP_INFO``
(acknowledged bytes out, bytes in), at no cost on the data path.

sshd runs at ``LogLevel DEBUG1`` for the one line that says a jump reached its target
(``channel N: connected to HOST port P``, with the permitted target's own name, never text the
client sent); debug lines are read, never written to the log. What is
written: sshd's other lines, as before, and a record per connection
(`garrison.events.bastion`) when the person is in and when the connection ends.

sshd's ``MaxStartups`` does not apply to sshd in inetd mode, so the listener keeps its own
limits: at most `max_connections` at once, and at most `max_unauthenticated` connections per
source address that have not passed both methods (the rest are refused and recorded).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import selectors
import socket
import struct
import subprocess  # nosec B404  # one sshd per connection
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from garrison.events import bastion as records
from garrison.events.schema import Event
from garrison.events.sshd import parse_message

MAX_CONNECTIONS = 500
MAX_UNAUTHENTICATED = 10  # per source address, like sshd's MaxStartups 10
LOG_ROTATE_BYTES = 64 * 1024 * 1024
STOP_GRACE_S = 10.0
_DEBUG = "debug1: "
#: sshd connected a jump to its target (debug1). The host is one the principals file's
#: permitopen allowed, so it is Garrison's own text, not what the client chose to send.
_CONNECTED = re.compile(r"debug1: channel \d+: connected to (?P<host>\S+) port (?P<port>\d{1,5})")
#: sshd refused a jump. The host is the client's text (sshd cuts it at 100 characters): the
#: last " port N, but ..." ends it, whatever it holds.
_DENIED = re.compile(
    r"Received request from .* to connect to host (?P<host>.*) port "
    r"(?P<port>\d{1,5}), but the request was denied\."
)
# struct tcp_info (linux/tcp.h): tcpi_bytes_acked and tcpi_bytes_received, Linux 4.1 and later
_TCP_BYTES = struct.Struct("=QQ")
_TCP_BYTES_OFFSET = 120


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _target(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def tcp_bytes(conn: socket.socket) -> tuple[int | None, int | None]:
    """(bytes received, bytes sent and acknowledged) of a TCP socket; None where the kernel
    does not say."""
    try:
        info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return None, None
    if len(info) < _TCP_BYTES_OFFSET + _TCP_BYTES.size:
        return None, None
    acked, received = _TCP_BYTES.unpack_from(info, _TCP_BYTES_OFFSET)
    return received, acked


class BastionLog:
    """The bastion's log file: syslog lines (RFC 3339 time, host, ``PROGRAM[PID]``) written
    whole by concurrent connections, mirrored to stderr, rotated (``.1``) past `rotate_bytes`."""

    def __init__(self, path: Path, *, rotate_bytes: int = LOG_ROTATE_BYTES) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.host = socket.gethostname()
        self._lock = threading.Lock()
        self._file: IO[bytes] = path.open("ab")

    def write(self, program: str, pid: int, text: str) -> None:
        """One line of `program` (sshd, or the bastion's records)."""
        line = f"{_iso(_now())} {self.host} {program}[{pid}]: {text}\n".encode()
        with self._lock:
            self._file.write(line)
            self._file.flush()
            sys.stderr.write(text + "\n")
            if self._file.tell() > self.rotate_bytes:
                self._file.close()
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                self._file = self.path.open("ab")

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class _Live:
    """One connection being served."""

    conn: socket.socket
    record: records.Connection
    started: float
    process: subprocess.Popen[bytes] | None = None
    thread: threading.Thread | None = None


class Listener:
    """Accepts connections on `listen` (ADDRESS:PORT) and serves each with ``sshd -i``."""

    def __init__(
        self,
        program: Path,
        config: Path,
        listen: str,
        log: BastionLog,
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_unauthenticated: int = MAX_UNAUTHENTICATED,
    ) -> None:
        self.argv = [str(program), "-i", "-e", "-f", str(config)]
        self.listen = listen
        address, _, port = listen.rpartition(":")
        self.address, self.port = address.strip("[]"), int(port)
        self.log = log
        self.max_connections = max_connections
        self.max_unauthenticated = max_unauthenticated
        self._live: dict[int, _Live] = {}
        self._waiting: dict[str, int] = {}  # source -> connections not yet authenticated
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False

    def stop(self) -> None:
        """Stop accepting and end the connections (safe from a signal handler, and twice)."""
        if not self._stopping:
            self._stopping = True
            self._wake_w.send(b"x")

    def serve(self, ready: threading.Event | None = None) -> None:
        """Accept until `stop`, then end the live connections and wait for their records."""
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        with (
            socket.create_server((self.address, self.port), family=family, backlog=128) as server,
            selectors.DefaultSelector() as selector,
        ):
            selector.register(server, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            self.log.write(records.PROGRAM, os.getpid(), f"listening on {self.listen}")
            if ready is not None:
                ready.set()
            try:
                while not self._stopping:
                    for key, _ in selector.select():
                        if key.fileobj is server:
                            self._accept(server)
            finally:
                self._end_all()
                self._wake_r.close()
                self._wake_w.close()

    def _accept(self, server: socket.socket) -> None:
        try:
            conn, peer = server.accept()
        except OSError as exc:  # the client left before accept; out of descriptors
            self.log.write(records.PROGRAM, os.getpid(), f"accept failed: {exc}")
            return
        source = peer[0]
        moment = _now()
        record = records.Connection(src_ip=source, src_port=peer[1], start=_iso(moment))
        live = None
        with self._lock:
            if len(self._live) >= self.max_connections:
                record.reason = f"{self.max_connections} connections already open"
            elif self._waiting.get(source, 0) >= self.max_unauthenticated:
                record.reason = f"{self.max_unauthenticated} unauthenticated connections from it"
            else:
                self._waiting[source] = self._waiting.get(source, 0) + 1
                live = _Live(conn, record, time.monotonic())
                self._live[conn.fileno()] = live
        if live is None:
            conn.close()
            record.end = record.start
            self.log.write(records.PROGRAM, os.getpid(), records.message("refused", record))
            return
        live.thread = threading.Thread(target=self._serve, args=(live,), daemon=True)
        live.thread.start()

    def _serve(self, live: _Live) -> None:
        pid = os.getpid()
        try:
            with subprocess.Popen(  # noqa: S603  # nosec B603  # fixed arguments
                self.argv,
                stdin=live.conn.fileno(),
                stdout=live.conn.fileno(),
                stderr=subprocess.PIPE,
            ) as process:
                live.process, pid = process, process.pid
                if self._stopping:
                    process.terminate()
                for raw in process.stderr or ():
                    self._line(live, pid, raw.decode(errors="replace").rstrip("\r\n"))
        except OSError as exc:  # sshd could not start: said, and the connection recorded
            live.record.reason = f"sshd did not start: {exc}"
        finally:
            self._close(live, pid)

    def _line(self, live: _Live, pid: int, text: str) -> None:
        record = live.record
        if text.startswith(_DEBUG):
            if (reached := _CONNECTED.fullmatch(text)) is not None:
                record.targets.append(_target(reached["host"], reached["port"]))
            return
        self.log.write("sshd", pid, text)
        if (denied := _DENIED.fullmatch(text)) is not None:
            record.denied.append(_target(denied["host"], denied["port"]))
            return
        event: Event = {}
        if not parse_message(text, event) or event.get("class") != "authentication":
            return
        if "cert_key_id" in event:
            record.cert_key_id, record.cert_serial = event["cert_key_id"], event["cert_serial"]
        if event.get("outcome") == "success" and not record.authenticated:
            record.authenticated = True
            record.user = event.get("user", "")
            self._authenticated(record.src_ip)
            self.log.write(records.PROGRAM, pid, records.message("opened", record))

    def _authenticated(self, source: str) -> None:
        with self._lock:
            self._release(source)

    def _release(self, source: str) -> None:
        count = self._waiting.get(source, 0) - 1
        if count > 0:
            self._waiting[source] = count
        else:
            self._waiting.pop(source, None)

    def _close(self, live: _Live, pid: int) -> None:
        record = live.record
        record.bytes_in, record.bytes_out = tcp_bytes(live.conn)
        with self._lock:
            self._live.pop(live.conn.fileno(), None)
            if not record.authenticated:
                self._release(record.src_ip)
        live.conn.close()
        record.end = _iso(_now())
        record.duration_s = round(time.monotonic() - live.started, 3)
        self.log.write(records.PROGRAM, pid, records.message("closed", record))

    def _end_all(self) -> None:
        """End every live connection (sshd gets SIGTERM) and wait for their records."""
        with self._lock:
            live = list(self._live.values())
        for one in live:
            if one.process is not None and one.process.poll() is None:
                one.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for one in live:
            if one.thread is not None:
                one.thread.join(max(0.0, deadline - time.monotonic()))
        for one in live:  # past the grace: killed, and their records still written
            if one.process is not None and one.process.poll() is None:
                one.process.kill()
            if one.thread is not None:
                one.thread.join(STOP_GRACE_S)
