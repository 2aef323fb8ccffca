"""The detector following the store: a crash anywhere neither misses nor doubles a finding, and
live gives what replay gives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from garrison.detect import rules
from garrison.detect.engine import Engine
from garrison.detect.live import Detector, finding_record
from garrison.events.parsers import line_parser
from garrison.logstore.digests import Signer
from garrison.logstore.store import Store
from tests.detect.helpers import Receiver

REFERENCE = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
CATALOG = rules.load()


class MemorySink:
    """Findings by id, as the server stores them (an upsert)."""

    def __init__(self) -> None:
        self.findings: dict[str, dict[str, Any]] = {}
        self.writes = 0

    def upsert(self, findings: list[dict[str, Any]]) -> list[str]:
        self.writes += 1
        new = [f["id"] for f in findings if f["id"] not in self.findings]
        for finding in findings:
            self.findings[finding["id"]] = finding
        return new


def _lines() -> list[str]:
    """Two brute forces (one ends in a login), an enumeration, and quiet traffic between."""
    out = []
    for n in range(120):
        second = n * 3
        stamp = f"Dec  1 10:{second // 60:02d}:{second % 60:02d}"
        out.append(
            f"{stamp} web-1 sshd[{n}]: Failed password for invalid user u{n % 9} "
            f"from 203.0.113.{1 + n % 2} port {4000 + n} ssh2"
        )
        if n % 10 == 0:
            out.append(
                f"{stamp} web-1 sshd[9{n}]: Accepted publickey for alice from 192.0.2.7 "
                "port 50000 ssh2: ED25519 SHA256:abc"
            )
    out.append(
        "Dec  1 10:07:00 web-1 sshd[999]: Accepted password for u3 from 203.0.113.1 port 1 ssh2"
    )
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store", signer=Signer.load_or_create(tmp_path / "k.pem", b"k"))
    parse = line_parser("sshd", reference_time=REFERENCE)
    s.append("ssh", [parse(line) for line in _lines()])
    return s


def _crash(*_: object) -> None:
    raise SystemExit("killed")


def _run_to_end(detector: Detector) -> None:
    while detector.step():
        pass
    detector.checkpoint()


def _comparable(findings: dict[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (f["id"], f["rule"], f["count"], f["first_seen"], f["last_seen"], tuple(f["evidence"]))
        for f in findings.values()
    )


def test_live_equals_replay(tmp_path: Path, store: Store) -> None:
    """The same events through the detector and through a plain engine: the same findings."""
    sink = MemorySink()
    _run_to_end(Detector(store, CATALOG, sink, tmp_path / "state.json"))
    engine = Engine(CATALOG)
    for record in store.stream("ssh").read(0, 10_000):
        engine.process(record.event(), f"ssh:{record.offset}")
    replayed = {r["id"]: r for r in map(finding_record, engine.all_findings())}
    assert _comparable(sink.findings) == _comparable(replayed)
    assert {f["rule"] for f in sink.findings.values()} >= {
        "ssh_bruteforce_fast",
        "ssh_user_enumeration",
        "ssh_success_after_bruteforce",
    }


@pytest.mark.parametrize("crash_after", [1, 37, 150, 241])
def test_a_crash_anywhere_neither_misses_nor_doubles(
    tmp_path: Path, store: Store, crash_after: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill the detector after `crash_after` records (findings already sent, state not saved);
    the restarted detector ends with exactly the findings of an uninterrupted run."""
    whole = MemorySink()
    _run_to_end(Detector(store, CATALOG, whole, tmp_path / "whole.json"))

    sink = MemorySink()
    state = tmp_path / "state.json"
    monkeypatch.setattr("garrison.detect.live.BATCH", 10)
    first = Detector(store, CATALOG, sink, state, checkpoint_seconds=10**9)
    while sum(first.offsets.values()) < crash_after // 2 and first.step():
        pass
    first.checkpoint()
    while sum(first.offsets.values()) < crash_after and first.step():
        pass
    # The crash, inside a checkpoint: the findings reached the sink, the state did not.
    monkeypatch.setattr("garrison.detect.live.replace_private", _crash)
    with pytest.raises(SystemExit):
        first.checkpoint()
    monkeypatch.undo()
    monkeypatch.setattr("garrison.detect.live.BATCH", 10)
    del first
    again = Detector(store, CATALOG, sink, state, checkpoint_seconds=0)
    _run_to_end(again)
    assert _comparable(sink.findings) == _comparable(whole.findings)


def test_state_survives_a_restart_inside_a_window(tmp_path: Path) -> None:
    """Five failures before the restart and five after still make the ten of a brute force."""
    store = Store(tmp_path / "store", signer=Signer.load_or_create(tmp_path / "k.pem", b"k"))
    parse = line_parser("sshd", reference_time=REFERENCE)
    line = (
        "Dec  1 10:00:{:02d} web-1 sshd[{}]: Failed password for root from 198.51.100.9 port 1 ssh2"
    )
    store.append("ssh", [parse(line.format(n * 3, n)) for n in range(5)])
    sink = MemorySink()
    _run_to_end(Detector(store, CATALOG, sink, tmp_path / "s.json"))
    assert sink.findings == {}
    store.append("ssh", [parse(line.format(n * 3, n)) for n in range(5, 10)])
    _run_to_end(Detector(store, CATALOG, sink, tmp_path / "s.json"))
    (finding,) = sink.findings.values()
    assert (finding["rule"], finding["count"]) == ("ssh_bruteforce_fast", 10)
    assert finding["evidence"][0] == "ssh:0"


def test_new_findings_are_announced_once(tmp_path: Path, store: Store) -> None:
    """Updates of a finding are not news: one message per finding, however often it grows."""
    from garrison.detect.notify import Notifier, Route  # noqa: PLC0415

    receiver = Receiver()
    try:
        sink = MemorySink()
        notifier = Notifier([Route("webhook", receiver.url, 1.0)], b"k", tmp_path / "spool")
        detector = Detector(
            store, CATALOG, sink, tmp_path / "state.json", checkpoint_seconds=0, notifier=notifier
        )
        _run_to_end(detector)
        announced = [f["id"] for body in receiver.bodies() for f in body["findings"]]
        assert sorted(announced) == sorted(sink.findings)
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
