"""This host's metrics: the snapshot, the Prometheus text format, the agent's /metrics."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from garrison.agent.metrics_http import parse_listen, serve
from garrison.core.errors import ConfigError
from garrison.host.exposition import registry, render
from garrison.host.metrics import Sampler
from tests.cli import garrison
from tests.ssh.helpers import free_port


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_a_snapshot_has_every_metric() -> None:
    snapshot = Sampler().snapshot()
    for key in (
        "cpu_percent",
        "load_1",
        "mem_used_percent",
        "swap_used_percent",
        "processes",
        "uptime_s",
        "reboot_required",
        "disk_read_bytes_per_s",
        "net_recv_bytes_per_s",
    ):
        assert key in snapshot, key  # fmt: skip
    assert 0.0 <= snapshot["cpu_percent"] <= 100.0
    root = next(d for d in snapshot["disks"] if d["mount"] == "/")
    assert 0.0 < root["used_percent"] < 100.0
    assert 0.0 < root["inodes_used_percent"] < 100.0
    assert not any(d["fstype"] in {"proc", "sysfs", "tmpfs"} for d in snapshot["disks"])


def test_the_text_format_parses_with_prometheus_clients_parser() -> None:
    families = _families(render(registry(Sampler())).decode())
    assert "garrison_host_memory_used_percent" in families
    used = {
        labels["mount"]: value
        for labels, value in families["garrison_host_filesystem_used_percent"]
    }
    assert 0.0 < used["/"] < 100.0


def test_the_agents_metrics_endpoint_on_loopback() -> None:
    port = free_port()
    server, _ = serve(f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"  # loopback only
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:  # noqa: S310
            assert reply.headers["Content-Type"].startswith("text/plain")
            families = _families(reply.read().decode())
        assert "garrison_host_cpu_percent" in families
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/", timeout=10)  # noqa: S310
        assert missing.value.code == 404
        missing.value.close()
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ConfigError, match="not a loopback address"):
        parse_listen("0.0.0.0:9108")


def test_the_cli_prints_a_snapshot_and_the_agent_its_metrics_address() -> None:
    shown = garrison("host", "metrics", "--format", "json", "--interval", "0.2")
    assert shown.returncode == 0, shown.stderr
    snapshot = json.loads(shown.stdout)
    assert {"cpu_percent", "mem_used_percent", "disks"} <= set(snapshot)
    assert {"mount", "used_percent"} <= set(snapshot["disks"][0])
    text = garrison("host", "metrics", "--format", "prometheus", "--interval", "0.2")
    assert "garrison_host_filesystem_used_percent" in _families(text.stdout)
    config = garrison(
        "agent", "--print-config", env={"GARRISON_AGENT_METRICS_LISTEN": "127.0.0.1:9199"}
    )
    assert "metrics: http://127.0.0.1:9199/metrics" in config.stdout


def test_clock_offset_from_chrony_or_timesyncd(monkeypatch: pytest.MonkeyPatch) -> None:
    from garrison.host import metrics  # noqa: PLC0415

    monkeypatch.setattr(metrics, "CHRONYC", "/bin/true")
    chrony = (
        "A29FC87B,ntp.example,3,1733050000.1,-0.000123456,0.00001,0.0002,1.5,0.01,0.02,64,Normal"
    )
    monkeypatch.setattr(metrics, "_said", lambda argv: chrony if "tracking" in argv else None)
    assert metrics.clock_offset() == pytest.approx(-0.000123456)
    monkeypatch.setattr(metrics, "CHRONYC", "/no/chronyc")
    said = "       Server: 192.0.2.1 (ntp)\n       Offset: +2.314ms\n        Delay: 5ms\n"
    monkeypatch.setattr(metrics, "_said", lambda argv: said)
    assert metrics.clock_offset() == pytest.approx(0.002314)
    monkeypatch.setattr(metrics, "_said", lambda argv: None)
    assert metrics.clock_offset() is None


def test_agent_status_says_when_no_agent_answers() -> None:
    port = free_port()
    said = garrison("agent", "status", env={"GARRISON_AGENT_METRICS_LISTEN": f"127.0.0.1:{port}"})
    assert said.returncode != 0
    assert f"no agent answers at http://127.0.0.1:{port}/metrics" in said.stderr
    assert "garrison agent run" in said.stderr
