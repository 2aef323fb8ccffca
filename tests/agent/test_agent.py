"""The agent in-process against a real collector: exactly once, roll-forward, renewal, alerts."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from garrison.agent import daemon
from garrison.agent.daemon import Agent, Source
from garrison.agent.identity import Identity, new_key_and_csr
from garrison.core.errors import UsageError
from garrison.core.pki import CertificateAuthority
from garrison.logstore.store import Store
from garrison.pipeline.collector import Collector
from tests.pipeline.journals import needs_journal_remote, sshd_entry, write_journal
from tests.pipeline.world import loopback_collector
from tests.ssh.helpers import host_root


@dataclass
class Rig:
    """A CA, a store, a running collector and an enrolled agent state dir."""

    ca: CertificateAuthority
    store: Store
    collector: Collector
    state: Path
    log: Path

    @property
    def url(self) -> str:
        host, port = self.collector.address
        return f"https://{host}:{port}"

    def agent(self) -> Agent:
        return Agent(self.state, self.url, [Source(self.log, "jsonl", "app")])

    def stored(self) -> list[int]:
        if "app" not in self.store.stream_names():
            return []
        return [r.event()["n"] for r in self.store.stream("app").read(0, 10**9)]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """Everything on loopback in one process."""
    world = loopback_collector(tmp_path, renew_minutes=30)
    ca, store, collector = world.ca, world.store, world.collector
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    state = tmp_path / "agent"
    key_pem, csr = new_key_and_csr("web-1")
    Identity(state / "identity").save(
        key_pem, ca.sign_client(csr, "web-1", 60), ca.cert_path.read_bytes()
    )
    log = tmp_path / "app.log"
    log.write_text("")
    yield Rig(ca, store, collector, state, log)
    collector.shutdown()
    thread.join(5)
    store.close()


def _append(log: Path, numbers: range) -> None:
    with log.open("a") as fh:
        fh.writelines(json.dumps({"n": n}) + "\n" for n in numbers)


def test_lines_arrive_once_with_host(rig: Rig) -> None:
    """Lines written are shipped once, stamped with the certificate's host."""
    _append(rig.log, range(50))
    agent = rig.agent()
    agent.step()
    agent.step()
    assert rig.stored() == list(range(50))
    assert {r.event()["host"] for r in rig.store.stream("app").read(0, 100)} == {"web-1"}
    agent.close()


def test_the_name_a_line_gives_its_host_is_kept_apart_from_the_certified_host(rig: Rig) -> None:
    """A machine calling itself ip-10-0-0-5 in its logs still ships as web-1, not refused."""
    rig.log.write_text(
        json.dumps({"n": 0, "host": "ip-10-0-0-5"})
        + "\n"
        + json.dumps({"n": 1, "host": "WEB-1"})
        + "\n"
    )
    agent = rig.agent()
    agent.step()
    agent.close()
    events = [r.event() for r in rig.store.stream("app").read(0, 10)]
    assert [(e["host"], e.get("logged_host")) for e in events] == [
        ("web-1", "ip-10-0-0-5"),
        ("web-1", None),
    ]


def test_crash_between_spool_and_cursor_rolls_forward(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch spooled just before a crash is not read again after the restart."""
    _append(rig.log, range(20))
    agent = rig.agent()
    follower = agent.followers[0]
    monkeypatch.setattr(follower.tailer, "commit", lambda position: None)  # crash: no commit
    follower.read(agent.shipper)
    agent.close()
    monkeypatch.undo()
    _append(rig.log, range(20, 30))
    again = rig.agent()
    for _ in range(3):
        again.step()
    assert sorted(rig.stored()) == list(range(30))
    assert len(rig.stored()) == 30
    again.close()


def test_collector_down_then_back(rig: Rig) -> None:
    """While the collector refuses, batches wait in the spool and go out once it is back."""
    _append(rig.log, range(10))
    agent = Agent(rig.state, "https://127.0.0.1:9", [Source(rig.log, "jsonl", "app")])
    agent.step()  # port 9: nothing listens
    assert agent.followers[0].spool.count == 1
    agent.close()
    back = rig.agent()
    back.step()
    assert rig.stored() == list(range(10))
    back.close()


def test_certificate_renewed_when_due(rig: Rig) -> None:
    """With a third of its life left the agent swaps in a fresh certificate and key."""
    agent = rig.agent()
    identity = agent.identity
    old_key = identity.key.read_bytes()
    assert not agent.renew_if_due()
    later = identity.not_after() - dt.timedelta(minutes=5)
    assert agent.renew_if_due(later)
    assert identity.key.read_bytes() != old_key
    assert not agent.renew_if_due()  # the new certificate is fresh
    _append(rig.log, range(3))
    agent.step()
    assert rig.stored() == [0, 1, 2]
    agent.close()


def test_near_full_spool_raises_an_alert(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past 80 % of the spool bound the agent reports it once, to its log and the collector."""
    monkeypatch.setattr(daemon, "SPOOL_BYTES", 2000)
    monkeypatch.setattr(daemon, "BATCH_LINES", 5)
    agent = Agent(rig.state, "https://127.0.0.1:9", [Source(rig.log, "jsonl", "app")])
    _append(rig.log, range(200))
    for _ in range(10):
        agent.step()
    assert agent.followers[0].alerted
    assert agent.pending_alerts
    agent.close()


def test_source_specs_are_checked_and_regex_formats_keep_their_colons() -> None:
    """FORMAT:STREAM:PATH; a regex format splits on its last two colons; mistakes are named."""
    pattern = r"regex:(?P<time>\S+) (?P<level>\w+): (?P<message>.*)"
    assert Source.parse(f"{pattern}:app:/var/log/app.log") == Source(
        Path("/var/log/app.log"), pattern, "app"
    )
    assert Source.parse("sshd:ssh:/srv/a:b.log") == Source(Path("/srv/a:b.log"), "sshd", "ssh")
    for spec, words in (
        ("auth.log", "FORMAT:STREAM:PATH"),
        ("sshd::/var/log/auth.log", "FORMAT:STREAM:PATH"),
        ("sshd:SSH:/var/log/auth.log", "invalid stream 'SSH'"),
        ("syslog:ssh:/var/log/auth.log", "unknown format 'syslog'"),
        ("regex:(:app:/var/log/app.log", "does not compile"),
        ("regex:plain:app:/var/log/app.log", "names no groups"),
    ):
        with pytest.raises(UsageError, match=re.escape(words)):
            Source.parse(spec)


@needs_journal_remote
def test_journal_source_ships_once_across_a_crash(rig: Rig, tmp_path: Path) -> None:
    """Journal entries reach the ssh stream parsed; a crash before the cursor commit re-sends
    nothing; entries written while the agent is down arrive after the restart."""
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(journal, [sshd_entry(n) for n in range(5)])
    source = Source(Path("journal:ssh.service"), "sshd", "ssh", journal_dir=journal)
    agent = Agent(rig.state, rig.url, [source])
    follower = agent.followers[0]
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)
    while not follower.spool.count and dt.datetime.now(dt.UTC) < deadline:
        original = follower.tailer.commit
        follower.tailer.commit = lambda position: None  # type: ignore[method-assign]  # crash
        follower.read(agent.shipper)
        follower.tailer.commit = original  # type: ignore[method-assign]
    agent.close()
    write_journal(journal, [sshd_entry(n) for n in range(5, 8)])
    again = Agent(rig.state, rig.url, [source])
    while dt.datetime.now(dt.UTC) < deadline:
        again.step()
        if "ssh" in rig.store.stream_names() and rig.store.stream("ssh").next_offset >= 8:
            break
    again.close()
    events = [r.event() for r in rig.store.stream("ssh").read(0, 100)]
    assert [e["src_port"] for e in events] == list(range(1000, 1008))
    assert {(e["host"], e["outcome"], e["class"]) for e in events} == {
        ("web-1", "failure", "authentication")
    }


def test_replay_equals_live_through_agent_collector_and_detector(rig: Rig, tmp_path: Path) -> None:
    """The same sshd file replayed offline and shipped agent -> collector -> store -> detector:
    the same findings (rule, actor, counts, times)."""
    from garrison.detect import rules  # noqa: PLC0415
    from garrison.detect.live import Detector  # noqa: PLC0415
    from garrison.detect.replay import replay  # noqa: PLC0415

    log = tmp_path / "auth.log"
    lines = [
        f"Dec  1 10:{n // 20:02d}:{(n * 3) % 60:02d} web-1 sshd[{n}]: Failed password for invalid "
        f"user u{n % 7} from 203.0.113.{1 if n < 60 else 2} port {4000 + n} ssh2"
        for n in range(90)
    ]
    lines.append(
        "Dec  1 10:05:00 web-1 sshd[999]: Accepted password for u1 from 203.0.113.1 port 9 ssh2"
    )
    log.write_text("\n".join(lines) + "\n")
    catalog = rules.load()
    offline, _ = replay(catalog, "sshd", [log])

    agent = Agent(rig.state, rig.url, [Source(log, "sshd", "ssh")])
    for _ in range(3):
        agent.step()
    agent.close()
    found: dict[str, dict[str, Any]] = {}

    class Sink:
        def upsert(self, findings: list[dict[str, Any]]) -> list[str]:
            new = [f["id"] for f in findings if f["id"] not in found]
            found.update((f["id"], f) for f in findings)
            return new

    detector = Detector(rig.store, catalog, Sink(), tmp_path / "state.json", streams=["ssh"])
    while detector.step():
        pass
    detector.checkpoint()

    def summary(items: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (f["rule"], f.get("src_ip"), f["count"], f["first_seen"], f["last_seen"]) for f in items
        )

    assert summary(found.values()) == summary(f.as_dict() for f in offline)
    assert {f["rule"] for f in found.values()} >= {
        "ssh_bruteforce_fast",
        "ssh_success_after_bruteforce",
    }


def test_the_agent_keeps_sshd_trusting_garrison(tmp_path: Path) -> None:
    """From the collector: CA keys, KRL, principals and a host certificate for the host's own
    key and name; kept until due; a revocation arrives with the next refresh; a configuration
    sshd refuses is reported once and changes nothing."""
    world = loopback_collector(tmp_path, ssh=True)
    thread = threading.Thread(target=world.collector.serve_forever, daemon=True)
    thread.start()
    try:
        state = tmp_path / "agent"
        key_pem, csr = new_key_and_csr("web-1")
        Identity(state / "identity").save(
            key_pem, world.ca.sign_client(csr, "web-1", 60), world.ca.cert_path.read_bytes()
        )
        host, _, _ = host_root(tmp_path)
        host_port = world.collector.address
        agent = Agent(state, f"https://{host_port[0]}:{host_port[1]}", [], ssh=host)
        agent.refresh_ssh(force=True)
        certificate = host.host_certificate.read_text()
        shown = subprocess.run(
            ["ssh-keygen", "-L", "-f", str(host.host_certificate)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "host certificate" in shown
        assert "web-1" in shown
        assert (host.own / "principals" / "root").read_text() == "role-admin\n"
        agent.refresh_ssh(force=True)
        assert host.host_certificate.read_text() == certificate  # not due: kept
        authority = world.collector.ssh.authority  # type: ignore[union-attr]
        authority.write_krl([99], world.data.ssh_krl)
        agent.refresh_ssh(force=True)
        assert (host.own / "revoked.krl").read_bytes() == world.data.ssh_krl.read_bytes()
        main = host.etc / "sshd_config"
        main.write_text(main.read_text() + "NoSuchOption yes\n")
        authority.write_krl([99, 100], world.data.ssh_krl)
        agent.refresh_ssh(force=True)
        agent.refresh_ssh(force=True)
        refusals = [a for a in agent.pending_alerts if "sshd" in a["message"]]
        assert len(refusals) == 1
        assert "NoSuchOption" in refusals[0]["reason"]
        assert (host.own / "revoked.krl").read_bytes() != world.data.ssh_krl.read_bytes()
        audit = [r.event()["action"] for r in world.store.stream("audit").read(0, 100)]
        assert audit.count("collector.host-certificate.post") == 1
        agent.close()
    finally:
        world.collector.shutdown()
        thread.join(5)
        world.store.close()


def test_health_reported_remediated_under_a_lease_and_audited(rig: Rig) -> None:
    """The agent's monitor through the real collector: metrics on ``metrics``, the step of a
    runbook on ``system``, the lease asked of the collector over mTLS, both audited."""
    from garrison.agent.leases import CollectorCoordinator  # noqa: PLC0415
    from garrison.host.checks import CommandCheck, Verdict  # noqa: PLC0415
    from garrison.host.monitor import HostMonitor, Runbook, Service  # noqa: PLC0415
    from garrison.host.remediate import CommandAction  # noqa: PLC0415

    marker = rig.state.parent / "ready"
    check = CommandCheck("ready", ("/usr/bin/test", "-e", str(marker)), interval_s=0.1)
    runbook = Runbook(CommandAction(("/usr/bin/touch", str(marker))), grace_s=0.2)
    monitor = HostMonitor(
        [Service("app", "zone-a", [(check, Verdict(2, 3))], runbook)],
        (),
        rig.state / "health",
        coordinator=CollectorCoordinator(rig.url, Identity(rig.state / "identity")),
    )
    agent = Agent(rig.state, rig.url, [Source(rig.log, "jsonl", "app")], monitor=monitor)
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop, 0.05), daemon=True)
    runner.start()

    def events(stream: str) -> list[dict[str, Any]]:
        if stream not in rig.store.stream_names():
            return []
        return [r.event() for r in rig.store.stream(stream).read(0, 10**6)]

    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    while "succeeded" not in [e.get("outcome") for e in events("system")]:
        assert dt.datetime.now(dt.UTC) < deadline, events("system")
        stop.wait(0.1)
    stop.set()
    runner.join(10)
    agent.close()
    assert marker.exists()
    steps = [e for e in events("system") if e["class"] == "remediation_activity"]
    assert [s["outcome"] for s in steps] == ["acted", "succeeded"]
    assert all(s["host"] == "web-1" for s in steps)
    snapshot = events("metrics")[0]
    assert snapshot["class"] == "host_metrics"
    assert snapshot["services"][0]["name"] == "app"
    audit = [(e["action"], e["actor"]["name"]) for e in events("audit")]
    assert ("collector.leases.post", "web-1") in audit
    assert ("agent.remediation.acted", "web-1") in audit
    assert ("agent.remediation.succeeded", "web-1") in audit
    leases = next(e for e in events("audit") if e["action"] == "collector.leases.post")
    assert leases["request_parameters"]["granted"] == "true"


def test_refused_monitor_batches_never_block_the_logs(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collector that takes no metrics stream (an older one): the monitor's batches are
    dropped, said, and the logs still flow."""
    from garrison.host.monitor import HostMonitor  # noqa: PLC0415
    from garrison.pipeline import collector as collector_module  # noqa: PLC0415

    monkeypatch.setattr(collector_module, "STREAMS", collector_module.STREAMS - {"metrics"})
    monitor = HostMonitor([], (), rig.state / "health")
    agent = Agent(rig.state, rig.url, [Source(rig.log, "jsonl", "app")], monitor=monitor)
    agent.outbox.put(monitor.tick())
    _append(rig.log, range(10))
    agent.step()
    assert rig.stored() == list(range(10))
    assert agent.outbox.spool.count == 0, "the refused batch is not kept for ever"
    agent.close()
