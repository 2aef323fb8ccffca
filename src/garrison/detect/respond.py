"""Automatic response to new findings: block the source for a while, through a hook.

The firewall and the edge that enforce a block come later; this is the interface they plug
into. `ScriptResponder` runs an operator's command for each new finding at or above a severity
whose source is an address, not on the allowlist: the finding as JSON on stdin, and
``GARRISON_SRC_IP``, ``GARRISON_FINDING_TYPE``, ``GARRISON_SEVERITY``,
``GARRISON_BLOCK_SECONDS`` in the environment. In dry-run (the default) it runs nothing and
says what it would have done. Every decision is returned as a `Response`, which the detector
records on the audit trail.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess  # nosec B404  # the operator's own hook, an argument list without a shell
from dataclasses import dataclass
from typing import Any, Protocol

from garrison.detect.intel import Networks, address, parse_networks

TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Response:
    """What was decided for one finding: ``blocked``, ``dry-run``, ``failed`` or a skip."""

    finding_id: str
    src_ip: str
    outcome: str
    detail: str = ""


class Responder(Protocol):
    """Decides and acts on new findings."""

    def respond(self, finding: dict[str, Any]) -> Response | None:
        """Act on one new finding, or None when it is not one to act on."""


class ScriptResponder:
    """Runs `command` to block a finding's source (or, in dry-run, only says it would)."""

    def __init__(
        self,
        command: list[str],
        *,
        min_severity: float = 7.0,
        allow: list[str] | None = None,
        dry_run: bool = True,
        block_seconds: int = 3600,
    ) -> None:
        self.command = command
        self.min_severity = min_severity
        self.allow = Networks(parse_networks(allow or [], "allowlist"))
        self.dry_run = dry_run
        self.block_seconds = block_seconds

    def respond(self, finding: dict[str, Any]) -> Response | None:
        """Block the source of a serious new finding (never an allowlisted or private one)."""
        ip = str(finding.get("src_ip") or "")
        parsed = address(ip)
        if float(finding["severity"]) < self.min_severity or parsed is None:
            return None
        fid = str(finding["id"])
        if self.allow.contains(parsed) or _local(parsed):
            return Response(fid, ip, "skipped", "the source is allowlisted or not public")
        if self.dry_run:
            return Response(fid, ip, "dry-run", f"would run {self.command[0]} for {ip}")
        env = {
            **os.environ,
            "GARRISON_SRC_IP": ip,
            "GARRISON_FINDING_TYPE": str(finding["type"]),
            "GARRISON_SEVERITY": str(finding["severity"]),
            "GARRISON_BLOCK_SECONDS": str(self.block_seconds),
        }
        try:
            done = subprocess.run(  # noqa: S603  # nosec B603  # the configured hook, no shell
                self.command,
                input=json.dumps(finding).encode(),
                env=env,
                capture_output=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Response(fid, ip, "failed", f"{self.command[0]}: {exc}")
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip()[:300]
            return Response(fid, ip, "failed", f"exit {done.returncode}: {reason}")
        return Response(fid, ip, "blocked", f"for {self.block_seconds} s")


def _local(parsed: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return parsed.is_private or parsed.is_loopback or parsed.is_link_local
