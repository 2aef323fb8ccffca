"""The detector role: follow the log store's streams and keep findings current, exactly once.

Each step reads the next records of every stream, runs them through the engine and hands the
findings they opened or changed to a `FindingSink`, then checkpoints: the read position of
every stream and the engine's state (its correlation windows and open findings) are written
together in one file, atomically (temporary file, fsync, rename).

After a crash the detector starts from the last checkpoint: the windows are as they were, the
records after it are read again, and the findings they produce have the same ids and the same
values, which the sink stores by id (an upsert), so nothing is missed and nothing is counted
twice. Evidence is ``STREAM:OFFSET``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import msgspec

from garrison.core.files import replace_private
from garrison.detect.engine import Engine, Finding
from garrison.detect.intel import IPLists
from garrison.detect.notify import Notifier
from garrison.detect.respond import Responder, Response
from garrison.detect.rules import RuleSet
from garrison.logstore.store import Store

log = logging.getLogger("garrison.detect")

BATCH = 5000
#: Streams without security events: the agents' metrics snapshots (the monitor role's).
SKIPPED = frozenset({"metrics"})
CHECKPOINT_SECONDS = 1.0
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class _State(msgspec.Struct):
    """The checkpoint file: positions, and the engine's snapshot kept as its own JSON."""

    offsets: dict[str, int]
    engine: msgspec.Raw


_decode_state = msgspec.json.Decoder(_State).decode


class FindingSink(Protocol):
    """Where findings go: stored by id, so that the same finding twice is one finding."""

    def upsert(self, findings: list[dict[str, Any]]) -> list[str]:
        """Create or replace each finding by its ``id``; raise if they are not durable.

        Returns the ids that were new (what notifications announce)."""


def finding_record(finding: Finding) -> dict[str, Any]:
    """What the sink stores: the finding as `Finding.as_dict` gives it, with its id."""
    return {"id": finding.id, **finding.as_dict()}


class Detector:
    """Follows `streams` of `store` (all of them when None) with `rules`, into `sink`."""

    def __init__(
        self,
        store: Store,
        rules: RuleSet,
        sink: FindingSink,
        state_path: Path,
        *,
        streams: Iterable[str] | None = None,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        lists: IPLists | None = None,
        notifier: Notifier | None = None,
        responder: Responder | None = None,
        audit: Callable[[Response], None] | None = None,
    ) -> None:
        self.store = store
        self.sink = sink
        self.state_path = state_path
        self.streams = list(streams) if streams is not None else None
        self.checkpoint_seconds = checkpoint_seconds
        self.engine = Engine(rules, lists=lists, keep_closed=False)
        self.notifier = notifier
        self.responder = responder
        self.audit = audit
        self.offsets: dict[str, int] = {}
        self._pending: dict[int, Finding] = {}
        self._dirty = False
        self._checkpointed = time.monotonic()
        self._load()

    def _load(self) -> None:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return
        state = _decode_state(raw)
        self.offsets = {str(k): int(v) for k, v in state.offsets.items()}
        self.engine.restore(bytes(state.engine))
        log.info("detector: resumed at %s", self.offsets)

    def step(self) -> int:
        """Read and evaluate the next records of every stream; how many were read."""
        read = 0
        names = self.store.stream_names() if self.streams is None else self.streams
        for name in (n for n in names if n not in SKIPPED):
            stream = self.store.stream(name)
            offset = self.offsets.get(name, 0)
            records = stream.read(offset, BATCH)
            for record in records:
                self.engine.process(_decode(record.payload), f"{name}:{record.offset}")
            if records:
                self.offsets[name] = records[-1].offset + 1
                read += len(records)
        for finding in self.engine.drain():
            self._pending[id(finding)] = finding
        self._dirty = self._dirty or bool(read)
        if read and time.monotonic() - self._checkpointed >= self.checkpoint_seconds:
            self.checkpoint()
        return read

    def checkpoint(self) -> None:
        """Hand the changed findings to the sink, then make the position and state durable."""
        if self._pending:
            records = [finding_record(f) for f in self._pending.values()]
            created = set(self.sink.upsert(records))
            self._pending = {}
            new = [r for r in records if r["id"] in created]
            # After the database and before the checkpoint: a crash in between announces and
            # responds again at the restart (at least once; hooks and receivers see the ids).
            if self.notifier is not None and new:
                self.notifier.notify(new)
            if self.responder is not None:
                for record in new:
                    response = self.responder.respond(record)
                    if response is not None and self.audit is not None:
                        self.audit(response)
        state = {"offsets": self.offsets, "engine": msgspec.Raw(self.engine.snapshot())}
        replace_private(self.state_path, msgspec.json.encode(state))
        self._checkpointed = time.monotonic()
        self._dirty = False

    def run(self, stop: threading.Event, idle: float = 0.5) -> None:
        """Follow until `stop` is set; checkpoint before returning."""
        while not stop.is_set():
            if not self.step():
                if self._dirty:
                    self.checkpoint()
                if self.notifier is not None:
                    self.notifier.flush()  # digests whose minute is over, retries
                stop.wait(idle)
        self.checkpoint()
