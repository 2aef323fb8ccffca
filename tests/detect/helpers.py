"""Small rule folders and event streams for detection tests."""

from __future__ import annotations

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from garrison.detect import rules
from garrison.detect.engine import Engine, Finding

FAILED = (
    "Dec  1 10:00:{s:02d} web-1 sshd[{k}]: Failed password for root from {ip} port 4{k:03d} ssh2"
)


def rule_set(tmp_path: Path, *docs: str) -> rules.RuleSet:
    """The rules in `docs` (YAML), without the catalog."""
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "rules.yml").write_text("\n---\n".join(textwrap.dedent(d) for d in docs))
    return rules.load([folder], catalog=False)


def run(ruleset: rules.RuleSet, events: list[dict[str, Any]]) -> list[Finding]:
    """Every finding of `ruleset` over `events`, fed in order."""
    engine = Engine(ruleset)
    for number, event in enumerate(events, start=1):
        engine.process(event, number)
    return engine.all_findings()


def auth_failure(second: float, ip: str = "203.0.113.5", **extra: Any) -> dict[str, Any]:
    """A normalized sshd password failure at 10:00:00 + `second`."""
    minutes, seconds = divmod(second, 60)
    hours, minutes = divmod(int(minutes), 60)
    return {
        "time": f"2026-12-01T{10 + hours:02d}:{minutes:02d}:{seconds:06.3f}Z",
        "class": "authentication",
        "outcome": "failure",
        "auth_method": "password",
        "process": "sshd",
        "src_ip": ip,
        "user": "root",
        "raw": f"Failed password for root from {ip}",
        **extra,
    }


FAILURE_RULE = """
    title: failure
    name: failure
    id: 11111111-1111-4111-8111-111111111111
    logsource: {product: linux, service: sshd}
    detection:
      sel: {class: authentication, outcome: failure}
      condition: sel
"""


class Receiver:
    """A loopback HTTP endpoint that records what it receives (or refuses, when told)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # stdlib naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.status == 200:
                    outer.received.append((dict(self.headers), body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]
