"""The agent loop: tail each source, parse at the edge, spool, ship, renew the certificate.

Exactly once, end to end: a batch is spooled durably (with the tail position it ends at)
before the tail cursor is committed, and its id is derived from where it starts, so after a
crash the agent rolls the cursor forward to the newest spooled batch instead of reading those
lines again; the collector acknowledges a re-sent batch id without storing it twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec
import zstandard

from garrison.agent.identity import RENEW_AT, Identity, new_key_and_csr
from garrison.agent.sshconf import HostSSH, SSHBundle
from garrison.core.errors import ConfigError, GarrisonError, UsageError, ValidationError
from garrison.events.parsers import events_parser, make_parser
from garrison.events.regex_format import PREFIX
from garrison.events.schema import certify_host
from garrison.host.monitor import HostMonitor
from garrison.logstore.store import STREAM_RE
from garrison.pipeline.journal import JournalPosition, JournalTailer
from garrison.pipeline.ship import BACKOFF_MAX, ShipError, Shipper, encode_batch, jittered
from garrison.pipeline.spool import Spool
from garrison.pipeline.tail import Position, Tailer
from garrison.ssh.ca import read_certificate

log = logging.getLogger("garrison.agent")

BATCH_LINES = 5000
SPOOL_BYTES = 256 * 1024 * 1024
HEARTBEAT_SECONDS = 60.0
SSH_REFRESH_SECONDS = 300.0
_HEADER_END = b"\n"
JOURNAL = "journal"


class _Line(Protocol):
    @property
    def data(self) -> bytes: ...

    @property
    def position(self) -> Any: ...


class _Reader(Protocol):
    """What a follower reads from: a `Tailer` (a file) or a `JournalTailer`."""

    @property
    def position(self) -> Any: ...

    def poll(self, max_lines: int = ...) -> Sequence[_Line]: ...

    def commit(self, position: Any) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Source:
    """What the agent watches (a file, or the journal), its format and the stream it goes to.

    A `path` of ``journal`` is this machine's systemd journal and ``journal:UNIT`` one unit of
    it; `journal_dir` reads journal files in that directory instead.
    """

    path: Path
    format: str
    stream: str
    journal_dir: Path | None = None

    @property
    def journal_unit(self) -> str | None:
        """For a journal source, the unit followed ('' for all); None for a file."""
        text = str(self.path)
        if text == JOURNAL:
            return ""
        return text.removeprefix(JOURNAL + ":") if text.startswith(JOURNAL + ":") else None

    @property
    def key(self) -> str:
        """A short stable name for the source's state files."""
        name = str(self.path) if self.journal_dir is None else f"{self.path}@{self.journal_dir}"
        return hashlib.sha256(name.encode()).hexdigest()[:16]

    def reader(self, cursor_file: Path) -> _Reader:
        """A tailer for the file, or for the journal."""
        unit = self.journal_unit
        if unit is None:
            return Tailer(self.path, cursor_file)
        return JournalTailer(unit or None, cursor_file, directory=self.journal_dir)

    def position(self, fields: dict[str, Any]) -> Any:
        """A position read back from a spooled batch's header."""
        return (Position if self.journal_unit is None else JournalPosition)(**fields)

    @classmethod
    def parse(cls, spec: str) -> Source:
        """`FORMAT:STREAM:PATH`, e.g. ``sshd:ssh:/var/log/auth.log``, checked now.

        A ``regex:PATTERN`` format may hold colons: the last two separate stream and path
        (such a path cannot hold one).
        """
        parts = spec.rsplit(":", 2) if spec.startswith(PREFIX) else spec.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise UsageError(
                f"cannot read the source {spec!r}",
                hint="write FORMAT:STREAM:PATH, e.g. sshd:ssh:/var/log/auth.log",
            )
        format_, stream, path = parts
        if not path.startswith("/") and not (path == JOURNAL or path.startswith(JOURNAL + ":")):
            raise UsageError(
                f"the source {spec!r} names neither an absolute path nor the journal",
                hint="write /var/log/FILE, journal (all of it) or journal:UNIT",
            )
        if not STREAM_RE.match(stream):
            raise UsageError(
                f"invalid stream {stream!r} in the source {spec!r}: "
                "use 1-32 lower-case letters, digits, '-' or '_'"
            )
        make_parser(format_)  # an unknown format or a bad pattern stops here, named
        return cls(Path(path), format_, stream)


def _batch_id(source: Source, start: Any, count: int) -> str:
    where = dataclasses.astuple(start) if start else ()
    digest = hashlib.sha256(json.dumps([source.key, where, count]).encode()).hexdigest()
    return f"{source.key}.{digest[:32]}"


class _Follower:
    """One source: its tailer, parser and spool."""

    def __init__(self, source: Source, state: Path, host: str) -> None:
        self.source = source
        self.host = host
        base = state / "sources" / source.key
        self.cursor_file = base / "cursor.json"
        self.tailer = source.reader(self.cursor_file)
        self.spool = Spool(base / "spool", SPOOL_BYTES, on_drop=self._dropped)
        self.parse = events_parser(source.format)  # a CloudTrail Records line is many events
        self.alerted = False
        self._roll_forward()

    def _dropped(self, batch_id: str, size: int) -> None:
        log.error(
            "agent: spool of %s full: dropped the oldest batch %s (%d bytes)",
            self.source.path,
            batch_id,
            size,
        )

    def _roll_forward(self) -> None:
        """A batch spooled just before a crash already holds lines past the cursor."""
        newest = self.spool.newest()
        if newest is not None:
            header, _ = newest[1].split(_HEADER_END, 1)
            end = self.source.position(msgspec.json.decode(header))
            self.tailer.commit(end)
            self.tailer.close()
            self.tailer = self.source.reader(self.cursor_file)

    def read(self, shipper: Shipper) -> int:
        """Move up to one batch of new lines into the spool; how many lines."""
        start = self.tailer.position
        lines = self.tailer.poll(BATCH_LINES)
        if not lines:
            return 0
        end = self.tailer.position or lines[-1].position
        host = self.host
        events = [certify_host(e, host) for line in lines for e in self.parse(line.data)]
        batch_id = _batch_id(self.source, start, len(lines))
        body = shipper.encode_batch(batch_id, self.source.stream, events)
        header = msgspec.json.encode(dataclasses.asdict(end))
        self.spool.put(batch_id, header + _HEADER_END + body)
        self.tailer.commit(end)
        return len(lines)

    def ship(self, shipper: Shipper) -> int:
        """Deliver spooled batches oldest first until the spool is empty or the collector fails."""
        sent = 0
        while (item := self.spool.peek()) is not None:
            batch_id, payload = item
            shipper.send(payload.split(_HEADER_END, 1)[1])
            self.spool.ack(batch_id)
            sent += 1
        return sent

    def close(self) -> None:
        self.tailer.close()
        self.spool.close()


class _Outbox:
    """The monitor's events (metrics, check states, alerts, remediation steps), spooled as
    batches like the logs' until the collector has them. The monitor's thread puts, the
    shipping loop takes."""

    def __init__(self, state: Path, host: str) -> None:
        self.host = host
        self.lock = threading.Lock()
        self.spool = Spool(state / "monitor" / "spool", SPOOL_BYTES // 4, on_drop=self._dropped)
        self.compress = zstandard.ZstdCompressor(level=3).compress

    @staticmethod
    def _dropped(batch_id: str, size: int) -> None:
        log.error(
            "agent: monitor spool full: dropped the oldest batch %s (%d bytes)", batch_id, size
        )

    def put(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        by_stream: dict[str, list[dict[str, Any]]] = {}
        for stream, event in events:
            by_stream.setdefault(stream, []).append(certify_host(event, self.host))
        with self.lock:
            for stream, batch in by_stream.items():
                batch_id = f"monitor.{uuid.uuid4().hex}"
                self.spool.put(batch_id, encode_batch(self.compress, batch_id, stream, batch))

    def ship(self, shipper: Shipper) -> int:
        """Deliver spooled batches; one the collector refuses as it is (a 4xx: an older
        collector without the metrics stream, say) is dropped, said, and never blocks the rest."""
        sent = 0
        while True:
            with self.lock:
                item = self.spool.peek()
            if item is None:
                return sent
            try:
                shipper.send(item[1])
            except ShipError as exc:
                if not exc.refused:
                    raise
                log.error(
                    "agent: the collector refuses monitor batch %s: %s; dropped", item[0], exc
                )
            with self.lock:
                self.spool.ack(item[0])
            sent += 1

    def close(self) -> None:
        with self.lock:
            self.spool.close()


class Agent:
    """Follows its sources and ships them to the collector as its host; with a `HostMonitor`,
    runs its checks, metrics, alerts and remediation in a thread of its own and ships what it
    reports."""

    def __init__(
        self,
        state: Path,
        collector_url: str,
        sources: list[Source],
        *,
        ssh: HostSSH | None = None,
        monitor: HostMonitor | None = None,
    ) -> None:
        self.identity = Identity(state / "identity")
        if not self.identity.exists():
            raise GarrisonError(
                f"this host has not joined (no identity in {self.identity.directory})",
                hint="run `garrison agent join --server URL --token TOKEN` first",
            )
        self.collector_url = collector_url
        host = self.identity.host()
        self.followers = [_Follower(s, state, host) for s in sources]
        self.pending_alerts: list[dict[str, Any]] = []
        self.shipper = Shipper(collector_url, self.identity.context())
        self._last_contact = -HEARTBEAT_SECONDS
        self.ssh = ssh
        self._ssh_refreshed = -SSH_REFRESH_SECONDS
        self._ssh_refusal = ""
        self.monitor = monitor
        self.outbox = _Outbox(state, host)

    def renew_if_due(self, now: dt.datetime | None = None) -> bool:
        """Get a new certificate (and key) from the collector when a third of its life is left."""
        if not self.identity.due_for_renewal(now):
            return False
        key_pem, csr = new_key_and_csr(self.identity.host())
        reply = self.shipper.request(
            "POST",
            "/v1/renew",
            json.dumps({"csr": csr.decode()}).encode(),
            {"Content-Type": "application/json"},
        )
        self.identity.save(key_pem, reply["certificate"].encode())
        self.shipper.close()
        self.shipper = Shipper(self.collector_url, self.identity.context())
        log.info("agent: certificate renewed until %s", self.identity.not_after().isoformat())
        return True

    def refresh_ssh(self, *, force: bool = False) -> None:
        """Every `SSH_REFRESH_SECONDS`: what sshd must trust from the collector (and a host
        certificate when there is none or a third of its life is left), applied by `HostSSH`;
        a refusal is logged and reported once, and the previous configuration stays."""
        if self.ssh is None:
            return
        if not force and time.monotonic() - self._ssh_refreshed < SSH_REFRESH_SECONDS:
            return
        reply = self.shipper.request("GET", "/v1/ssh")
        reply["host_certificate"] = self._host_certificate(self.ssh)
        try:
            self.ssh.apply(SSHBundle.from_reply(reply))
        except (ConfigError, ValidationError) as exc:
            log.error("agent: %s", exc)
            if exc.message != self._ssh_refusal:
                self.pending_alerts.append(
                    {
                        "class": "application_log",
                        "time": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
                        "message": "agent: sshd configuration refused",
                        "reason": exc.message,
                    }
                )
            self._ssh_refusal = exc.message
        else:
            self._ssh_refusal = ""
        self._ssh_refreshed = time.monotonic()

    def _host_certificate(self, ssh: HostSSH) -> str:
        """The host certificate to keep: the current one, or a new one when it is missing or
        has a third of its life left; empty without a host key."""
        if not ssh.host_key.exists():
            return ""
        if ssh.host_certificate.exists():
            current = ssh.host_certificate.read_text().strip()
            try:
                cert = read_certificate(current)
            except ValidationError:
                cert = None
            if cert is not None:
                life = cert.valid_before - cert.valid_after
                if cert.valid_before - time.time() > life * RENEW_AT:
                    return current
        reply = self.shipper.request(
            "POST",
            "/v1/ssh/host-certificate",
            json.dumps({"public_key": ssh.host_key.read_text()}).encode(),
            {"Content-Type": "application/json"},
        )
        log.info("agent: new SSH host certificate (serial %s)", reply.get("serial"))
        return str(reply["certificate"])

    def _alerts(self) -> list[dict[str, Any]]:
        """Spools past 80% of their bound, each reported once per crossing."""
        events = []
        for follower in self.followers:
            full = follower.spool.near_full
            if full and not follower.alerted:
                log.error(
                    "agent: spool of %s is %d%% full (%d batches); the oldest go first at 100%%",
                    follower.source.path,
                    100 * follower.spool.size_bytes // follower.spool.max_bytes,
                    follower.spool.count,
                )
                events.append(
                    {
                        "class": "application_log",
                        "time": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
                        "message": "agent spool near full",
                        "source": str(follower.source.path),
                        "spool_bytes": follower.spool.size_bytes,
                        "spool_batches": follower.spool.count,
                    }
                )
            follower.alerted = full
        return events

    def step(self) -> tuple[int, int]:
        """One round: read new lines of every source, then ship; (lines read, batches sent)."""
        read = sum(f.read(self.shipper) for f in self.followers)
        self.pending_alerts += self._alerts()
        sent = 0
        try:
            self.renew_if_due()
            self.refresh_ssh()
            if self.pending_alerts:
                batch_id = (
                    f"alert.{hashlib.sha256(repr(self.pending_alerts).encode()).hexdigest()[:32]}"
                )
                self.shipper.send(
                    self.shipper.encode_batch(batch_id, "system", self.pending_alerts)
                )
                self.pending_alerts = []
            sent = sum(f.ship(self.shipper) for f in self.followers)
            sent += self.outbox.ship(self.shipper)
            if time.monotonic() - self._last_contact > HEARTBEAT_SECONDS:
                self.shipper.request("GET", "/v1/health")  # a quiet host is not a silent one
            self._last_contact = time.monotonic()
        except ShipError as exc:
            log.warning("agent: collector unavailable, keeping batches spooled: %s", exc)
        return read, sent

    def watch(self, monitor: HostMonitor, stop: threading.Event, every: float = 1.0) -> None:
        """The monitor's loop: a tick a second (each check keeps its own interval), its events
        into the outbox. A tick that fails is logged and the next one runs."""
        while not stop.is_set():
            try:
                events = monitor.tick()
                if events:
                    self.outbox.put(events)
            except Exception:
                log.exception("agent: monitoring round failed")
            stop.wait(every)

    def run(self, stop: threading.Event, idle: float = 0.5) -> None:
        """Loop until `stop` is set; back off (doubling, jittered, up to 30 s) while the
        collector is down, reading on into the spool meanwhile."""
        watcher = None
        if self.monitor is not None:
            watcher = threading.Thread(
                target=self.watch, args=(self.monitor, stop), name="monitor", daemon=True
            )
            watcher.start()
        backoff = idle
        while not stop.is_set():
            read, sent = self.step()
            pending = self.outbox.spool.count or any(f.spool.count for f in self.followers)
            if sent or not pending:
                backoff, wait = idle, idle
            else:
                backoff = min(backoff * 2, BACKOFF_MAX)
                wait = jittered(backoff)
            if not read:
                stop.wait(wait)
        if watcher is not None:  # a restart under way finishes before the agent goes
            watcher.join(timeout=60)

    def close(self) -> None:
        """Release files and the connection."""
        for follower in self.followers:
            follower.close()
        self.outbox.close()
        self.shipper.close()
