"""Network namespaces a test creates (and deletes): veth pairs, addresses, commands inside."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

IP = shutil.which("ip") or "/usr/sbin/ip"


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True)  # fixed arguments


@dataclass
class Namespaces:
    """Namespaces named ``<prefix>-<name>``; `argv` runs a command inside one."""

    prefix: str
    names: list[str] = field(default_factory=list)

    def full(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def add(self, name: str) -> None:
        _ip("netns", "add", self.full(name))
        self.names.append(name)
        _ip("-n", self.full(name), "link", "set", "lo", "up")

    def link(self, a: str, a_addr: str, b: str, b_addr: str) -> None:
        """A veth pair between namespaces `a` and `b`, with an address (CIDR) at each end."""
        left, right = f"{self.prefix}{a[0]}{b[0]}", f"{self.prefix}{b[0]}{a[0]}"
        _ip("link", "add", left, "type", "veth", "peer", "name", right)
        for dev, ns, addr in ((left, a, a_addr), (right, b, b_addr)):
            _ip("link", "set", dev, "netns", self.full(ns))
            _ip("-n", self.full(ns), "addr", "add", addr, "dev", dev)
            _ip("-n", self.full(ns), "link", "set", dev, "up")

    def address(self, ns: str, peer: str, addr: str) -> None:
        """One more address on `ns`'s end of the link to `peer`."""
        _ip("-n", self.full(ns), "addr", "add", addr, "dev", f"{self.prefix}{ns[0]}{peer[0]}")

    def argv(self, ns: str, command: Sequence[str]) -> list[str]:
        return [IP, "netns", "exec", self.full(ns), *command]

    def delete(self) -> None:
        for name in self.names:
            subprocess.run([IP, "netns", "del", self.full(name)], check=False)


@contextmanager
def namespaces(*names: str) -> Iterator[Namespaces]:
    """Fresh namespaces for one test, deleted afterwards (their veths go with them)."""
    made = Namespaces(f"g{os.getpid() % 100000}")
    try:
        for name in names:
            made.add(name)
        yield made
    finally:
        made.delete()
