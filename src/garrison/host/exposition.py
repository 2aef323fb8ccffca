"""Metrics in Prometheus's text format, for an existing Prometheus to scrape (loopback
``/metrics`` of the agent), written with prometheus_client from a `Sampler` snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from garrison.host.metrics import Sampler
from garrison.host.monitor import HostMonitor

_GAUGES = (
    ("cpu_percent", "garrison_host_cpu_percent", "CPU busy since the previous scrape, percent."),
    ("load_1", "garrison_host_load1", "Load average over 1 minute."),
    ("load_5", "garrison_host_load5", "Load average over 5 minutes."),
    ("load_15", "garrison_host_load15", "Load average over 15 minutes."),
    ("cpu_count", "garrison_host_cpu_count", "Logical CPUs."),
    ("mem_total_bytes", "garrison_host_memory_total_bytes", "Memory in all."),
    ("mem_available_bytes", "garrison_host_memory_available_bytes", "Memory available."),
    ("mem_used_percent", "garrison_host_memory_used_percent", "Memory used, percent."),
    ("swap_used_percent", "garrison_host_swap_used_percent", "Swap used, percent."),
    ("processes", "garrison_host_processes", "Processes."),
    ("open_files", "garrison_host_open_files", "File descriptors open on the host."),
    ("uptime_s", "garrison_host_uptime_seconds", "Seconds since boot."),
    ("clock_offset_s", "garrison_host_clock_offset_seconds", "Clock offset from its time source."),
    ("disk_read_bytes_per_s", "garrison_host_disk_read_bytes_per_second", "Disk reads."),
    ("disk_write_bytes_per_s", "garrison_host_disk_write_bytes_per_second", "Disk writes."),
    ("net_recv_bytes_per_s", "garrison_host_network_receive_bytes_per_second", "Received."),
    ("net_sent_bytes_per_s", "garrison_host_network_transmit_bytes_per_second", "Sent."),
)
_DISK_GAUGES = (
    ("used_percent", "garrison_host_filesystem_used_percent", "Space used, percent."),
    ("free_bytes", "garrison_host_filesystem_free_bytes", "Space free."),
    ("inodes_used_percent", "garrison_host_filesystem_inodes_used_percent", "Inodes used."),
)


class _HealthCollector(Collector):
    """The monitor's view as of its last round (`HostMonitor.published`): each service and
    check up or down, each alert firing, each open breaker and pending verification."""

    def __init__(self, monitor: HostMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self.monitor.published
        families = {
            "services": GaugeMetricFamily(
                "garrison_service_up", "1 while every check of the service passes.",
                labels=["service", "zone"],
            ),
            "checks": GaugeMetricFamily(
                "garrison_check_up", "1 while the check is past no failure threshold.",
                labels=["service", "check"],
            ),
            "firing": GaugeMetricFamily(
                "garrison_alert_firing", "1 for each alert firing now.",
                labels=["rule", "instance", "severity"],
            ),
            "breakers": GaugeMetricFamily(
                "garrison_remediation_breaker_open", "1 while a runbook's circuit breaker is open.",
                labels=["subject"],
            ),
            "verifying": GaugeMetricFamily(
                "garrison_remediation_verifying",
                "1 while a runbook acted and waits to verify its fix.", labels=["subject"],
            ),
        }  # fmt: skip
        for name, labels in state.gauges():
            families[name].add_metric(list(labels[:-1]), labels[-1])
        yield from families.values()


class _HostCollector(Collector):
    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot: dict[str, Any] = self.sampler.snapshot()
        for key, name, text in _GAUGES:
            if snapshot.get(key) is not None:
                yield GaugeMetricFamily(name, text, value=float(snapshot[key]))
        for flag, name, text in (
            ("reboot_required", "garrison_host_reboot_required", "1 when a reboot is pending."),
            ("clock_synchronised", "garrison_host_clock_synchronised", "1 when NTP-synced."),
        ):
            if snapshot.get(flag) is not None:
                yield GaugeMetricFamily(name, text, value=1.0 if snapshot[flag] else 0.0)
        for key, name, text in _DISK_GAUGES:
            family = GaugeMetricFamily(name, text, labels=["mount", "fstype"])
            for disk in snapshot["disks"]:
                family.add_metric([disk["mount"], disk["fstype"]], float(disk[key]))
            yield family


def registry(sampler: Sampler, monitor: HostMonitor | None = None) -> CollectorRegistry:
    """A registry that samples this host at each scrape (and the monitor's state, if given)."""
    made = CollectorRegistry(auto_describe=False)
    made.register(_HostCollector(sampler))
    if monitor is not None:
        made.register(_HealthCollector(monitor))
    return made


def render(made: CollectorRegistry) -> bytes:
    """The registry's metrics in Prometheus's text format."""
    return generate_latest(made)
