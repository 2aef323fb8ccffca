"""This host's metrics: CPU, load, memory, swap, disks (space and inodes per mount), disk and
network I/O, file descriptors, processes, uptime, reboot-required, clock synchronisation and
offset.

`Sampler` keeps the previous counters, so that rates (CPU, I/O per second) cover the time since
the last sample; its first CPU reading is primed when it is made, so it is never the
meaningless 0 of a first ``psutil.cpu_percent()``. Pseudo file systems (proc, tmpfs, overlay
layers, ...) are left out of the disks.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Final

import psutil

from garrison.host import commands

REBOOT_REQUIRED: Final = Path("/var/run/reboot-required")
FILE_NR: Final = Path("/proc/sys/fs/file-nr")
TIMEDATECTL: Final = shutil.which("timedatectl") or "/usr/bin/timedatectl"
CHRONYC: Final = shutil.which("chronyc") or "/usr/bin/chronyc"
#: File systems that hold no data of the host's own.
PSEUDO: Final = frozenset(
    {"proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "overlay", "squashfs",
     "securityfs", "pstore", "bpf", "tracefs", "debugfs", "mqueue", "hugetlbfs", "fusectl",
     "configfs", "autofs", "binfmt_misc", "nsfs", "ramfs", "efivarfs", "rpc_pipefs"}
)  # fmt: skip


def _percent(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def disks() -> list[dict[str, Any]]:
    """Space and inodes of each mounted file system that holds data."""
    found = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.fstype in PSEUDO or part.mountpoint in seen:
            continue
        seen.add(part.mountpoint)
        try:
            usage = psutil.disk_usage(part.mountpoint)
            stat = os.statvfs(part.mountpoint)
        except OSError:
            continue  # unmounted meanwhile, or not ours to read
        inodes_used = stat.f_files - stat.f_ffree
        found.append(
            {
                "mount": part.mountpoint,
                "device": part.device,
                "fstype": part.fstype,
                "total_bytes": usage.total,
                "used_bytes": usage.used,
                "free_bytes": usage.free,
                "used_percent": round(usage.percent, 2),
                "inodes_total": stat.f_files,
                "inodes_used": inodes_used,
                "inodes_used_percent": _percent(inodes_used, stat.f_files),
            }
        )
    return found


def open_files() -> int | None:
    """File descriptors open on the host (the kernel's count)."""
    try:
        return int(FILE_NR.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def clock_synchronised() -> bool | None:
    """Whether systemd says the clock is synchronised (NTP); None where it cannot say."""
    said = _said([TIMEDATECTL, "show", "--property=NTPSynchronized", "--value"])
    return {"yes": True, "no": False}.get(said.strip()) if said is not None else None


def _said(argv: list[str]) -> str | None:
    ran = commands.run(argv, 5)
    return ran.stdout if ran.ok else None


_OFFSET = re.compile(r"Offset:\s*([+-]?[\d.]+)(us|ms|s)\b")


def clock_offset() -> float | None:
    """The clock's offset from its time source in seconds, from chrony or systemd-timesyncd;
    None where neither says."""
    if Path(CHRONYC).exists() and (said := _said([CHRONYC, "-c", "tracking"])):
        fields = said.strip().split(",")
        try:
            return float(fields[4])  # "System time": how far the clock is off NTP time
        except (IndexError, ValueError):
            return None
    if said := _said([TIMEDATECTL, "timesync-status"]):
        found = _OFFSET.search(said)
        if found:
            return float(found[1]) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[found[2]]
    return None


class Sampler:
    """Snapshots of this host's metrics, rates since the previous snapshot."""

    def __init__(self) -> None:
        psutil.cpu_percent(interval=None)  # primes the CPU reading
        self._at = time.monotonic()
        self._disk = psutil.disk_io_counters()
        self._net = psutil.net_io_counters()

    def snapshot(self) -> dict[str, Any]:
        """One snapshot (a JSON-ready dict)."""
        now = time.monotonic()
        elapsed = max(now - self._at, 1e-6)
        disk, net = psutil.disk_io_counters(), psutil.net_io_counters()
        memory, swap = psutil.virtual_memory(), psutil.swap_memory()
        load = os.getloadavg()
        cores = psutil.cpu_count() or 1
        found: dict[str, Any] = {
            "time": time.time(),
            "cpu_percent": psutil.cpu_percent(interval=None),
            "cpu_count": cores,
            "load_1": round(load[0], 2),
            "load_5": round(load[1], 2),
            "load_15": round(load[2], 2),
            "load_per_core": round(load[0] / cores, 3),
            "mem_total_bytes": memory.total,
            "mem_available_bytes": memory.available,
            "mem_used_percent": round(memory.percent, 2),
            "swap_total_bytes": swap.total,
            "swap_used_percent": round(swap.percent, 2),
            "disks": disks(),
            "processes": len(psutil.pids()),
            "open_files": open_files(),
            "uptime_s": round(time.time() - psutil.boot_time()),
            "reboot_required": REBOOT_REQUIRED.exists(),
            "clock_synchronised": clock_synchronised(),
        }
        offset = clock_offset()
        if offset is not None:
            found["clock_offset_s"] = round(offset, 6)
            found["clock_offset_abs_s"] = round(abs(offset), 6)
        if disk is not None and self._disk is not None:
            found["disk_read_bytes_per_s"] = round(
                (disk.read_bytes - self._disk.read_bytes) / elapsed
            )
            found["disk_write_bytes_per_s"] = round(
                (disk.write_bytes - self._disk.write_bytes) / elapsed
            )
        if net is not None and self._net is not None:
            found["net_recv_bytes_per_s"] = round((net.bytes_recv - self._net.bytes_recv) / elapsed)
            found["net_sent_bytes_per_s"] = round((net.bytes_sent - self._net.bytes_sent) / elapsed)
        self._at, self._disk, self._net = now, disk, net
        return found
