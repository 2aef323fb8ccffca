"""IP lists: the allowlist never produces findings; listed sources are tagged; lists reload."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from garrison.detect import intel, rules
from garrison.detect.engine import Engine
from garrison.detect.intel import IPLists, Networks, parse_networks
from tests.detect.helpers import auth_failure

CATALOG = rules.load()


def _run(lists: IPLists, events: list[dict[str, object]]) -> set[str]:
    engine = Engine(CATALOG, lists=lists)
    for n, event in enumerate(events):
        engine.process(event, n)
    return {f.rule.key for f in engine.all_findings()}


def test_networks_merge_and_search_v4_and_v6() -> None:
    nets = Networks(
        parse_networks(["10.0.0.0/8", "10.1.0.0/16", "192.0.2.7", "2001:db8::/32"], "t")
    )
    assert len(nets) == 3  # 10.1/16 folds into 10/8
    for text, inside in [
        ("10.9.9.9", True),
        ("11.0.0.0", False),
        ("192.0.2.7", True),
        ("192.0.2.8", False),
        ("2001:db8::1", True),
        ("2001:db9::1", False),
    ]:
        assert nets.contains(ipaddress.ip_address(text)) is inside, text


def test_the_allowlist_never_produces_findings() -> None:
    brute = [auth_failure(s, ip="198.51.100.4") for s in range(0, 30, 2)]
    assert "ssh_bruteforce_fast" in _run(IPLists(), brute)
    assert _run(IPLists(["198.51.100.0/24"]), brute) == set()


def test_listed_sources_are_tagged_and_found(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "tor-exits.txt").write_text("# a feed\n198.51.100.66\nnot-an-ip\n")
    (tmp_path / "scanners.csv").write_text("203.0.113.0/24,scanner,2026-11-30\n")
    lists = IPLists(folder=tmp_path)
    assert "tor-exits.txt:3" in caplog.text
    assert lists.lists_of("198.51.100.66") == ("tor-exits",)
    assert lists.lists_of("203.0.113.9") == ("scanners",)
    assert lists.lists_of("192.0.2.1") == ()
    engine = Engine(CATALOG, lists=lists)
    event = auth_failure(0, ip="198.51.100.66")
    engine.process(event, 1)
    assert event["threat_lists"] == ["tor-exits"]
    assert {f.rule.key for f in engine.all_findings()} == {"intel_listed_source"}


def test_lists_reload_when_a_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = tmp_path / "block.txt"
    feed.write_text("192.0.2.1\n")
    lists = IPLists(folder=tmp_path)
    assert lists.lists_of("192.0.2.2") == ()
    feed.write_text("192.0.2.1\n192.0.2.2\n")
    os.utime(feed, ns=(feed.stat().st_atime_ns, feed.stat().st_mtime_ns + 10**9))
    monkeypatch.setattr(intel, "RELOAD_SECONDS", 0.0)
    assert lists.reload_if_changed()
    assert lists.lists_of("192.0.2.2") == ("block",)
    assert not lists.reload_if_changed()


def test_findings_name_the_country_and_network_of_their_source() -> None:
    """Offline: geoip2fast's bundled database; private and documentation ranges stay blank."""
    engine = Engine(CATALOG)
    for s in range(0, 30, 2):
        engine.process(auth_failure(s, ip="8.8.8.8"), s)
        engine.process(auth_failure(s, ip="10.1.2.3"), s)
    found = {f.actor["src_ip"]: f.as_dict() for f in engine.all_findings()}
    assert (found["8.8.8.8"]["country"], found["8.8.8.8"]["asn"]) == ("US", "GOOGLE")
    assert "country" not in found["10.1.2.3"]
