"""IP lists for detection: the allowlist that never produces findings, and threat-intel lists.

A folder of lists: each ``NAME.txt`` or ``NAME.csv`` file is one list called NAME (Tor exits,
a scanner feed, your own blocklist). One address or CIDR per line (CSV: the first column);
``#`` starts a comment; IPv4 and IPv6. A line that is neither is reported with its file and
line number and skipped. The folder is re-read when a file changes (checked at most every
`RELOAD_SECONDS`), so feeds can be replaced while the detector runs.

The engine tags an event whose source is on lists with ``threat_lists`` (the list names) so
that rules can use them (the catalog's `intel_listed_source` does), and drops an event whose
source is on the allowlist before any rule sees it.
"""

from __future__ import annotations

import bisect
import ipaddress
import logging
import time
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("garrison.detect")

RELOAD_SECONDS = 10.0
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Networks:
    """A set of networks answering `contains(ip)` by binary search over sorted ranges."""

    def __init__(self, networks: Iterable[Network]) -> None:
        ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for net in networks:
            ranges[net.version].append((int(net.network_address), int(net.broadcast_address)))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, spans in ranges.items():
            merged: list[tuple[int, int]] = []
            for start, end in sorted(spans):
                if merged and start <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            self._starts[version] = [s for s, _ in merged]
            self._ends[version] = [e for _, e in merged]

    def __len__(self) -> int:
        return sum(len(s) for s in self._starts.values())

    def contains(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether `address` is in one of the networks."""
        value = int(address)
        starts = self._starts[address.version]
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value <= self._ends[address.version][i]


def parse_networks(lines: Iterable[str], origin: str) -> list[Network]:
    """Addresses and CIDRs from `lines` (first CSV column, ``#`` comments); bad lines logged."""
    found: list[Network] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].split(",", 1)[0].strip()
        if not text:
            continue
        try:
            found.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            log.error("ip list %s:%d: %r is not an address or CIDR; skipped", origin, number, text)
    return found


@lru_cache(maxsize=65536)
def address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`text` as an IP address (cached: sources repeat), or None when it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class IPLists:
    """The allowlist and the named lists of a folder, reloaded when the folder changes."""

    def __init__(self, allow: Iterable[str] = (), folder: Path | None = None) -> None:
        self.allow = Networks(parse_networks(allow, "detect_allowlist"))
        self.folder = folder
        self.lists: dict[str, Networks] = {}
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self._checked = 0.0
        self._cache: dict[str, tuple[str, ...]] = {}
        self.reload_if_changed(force=True)

    def _files(self) -> list[Path]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.suffix in {".txt", ".csv"})

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Re-read the folder if a file was added, removed or changed; True if it was."""
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_SECONDS:
            return False
        self._checked = now
        try:
            files = self._files()
            stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
            if stamp == self._stamp and not force:
                return False
            lists = {
                p.stem: Networks(parse_networks(p.read_text(errors="replace").splitlines(), str(p)))
                for p in files
            }
        except OSError as exc:  # a feed replaced while read: keep the lists, try again later
            log.error("ip lists: cannot read %s: %s; keeping the lists loaded", self.folder, exc)
            return False
        self.lists = lists
        self._stamp = stamp
        self._cache = {}
        if files:
            log.info(
                "ip lists: %s", ", ".join(f"{n} ({len(v)} ranges)" for n, v in self.lists.items())
            )
        return True

    def allowed(self, ip: str) -> bool:
        """Whether `ip` is on the allowlist."""
        parsed = address(ip)
        return parsed is not None and self.allow.contains(parsed)

    def lists_of(self, ip: str) -> tuple[str, ...]:
        """The names of the lists `ip` is on (empty: none)."""
        found = self._cache.get(ip)
        if found is None:
            parsed = address(ip)
            found = (
                tuple(name for name, nets in self.lists.items() if nets.contains(parsed))
                if parsed is not None
                else ()
            )
            if len(self._cache) >= 65536:
                self._cache.clear()
            self._cache[ip] = found
        return found
