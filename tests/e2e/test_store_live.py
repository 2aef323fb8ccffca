"""The log store while `garrison up` runs: the CLI writes beside the server, verify passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli import garrison, garrison_env
from tests.e2e.conftest import Garrison, free_port, start_garrison


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a garrison command on `data_dir`."""
    return garrison(*args, data_dir=data_dir)


def test_cli_and_server_write_one_audit_stream_and_it_verifies(tmp_path: Path) -> None:
    """Requests to the running server and CLI imports share the store; proofs check out."""
    running: Garrison = start_garrison("up", tmp_path / "data", free_port())
    try:
        running.wait_healthy()
        for _ in range(5):
            assert running.get("/login/") == 200
        lines = tmp_path / "web.jsonl"
        lines.write_text(
            "".join(json.dumps({"src_ip": f"203.0.113.{i}", "n": i}) + "\n" for i in range(200))
            + "not json\n"
        )
        imported = cli(running.data_dir, "logs", "import", "--stream", "web", str(lines))
        assert imported.returncode == 0, imported.stderr
        assert "imported 200 events" in imported.stdout
        assert cli(running.data_dir, "store", "checkpoint").returncode == 0
        verified = cli(running.data_dir, "store", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.startswith("intact:")
        found = cli(
            running.data_dir,
            "logs",
            "search",
            "--stream",
            "audit",
            "action=cli.logs.import",
            "--format",
            "jsonl",
        )
        (event,) = [json.loads(x) for x in found.stdout.splitlines()]
        proof = tmp_path / "proof.json"
        proved = cli(running.data_dir, "store", "prove", event["event_id"], "-o", str(proof))
        assert proved.returncode == 0, proved.stderr
        key = running.data_dir / "keys" / "logstore-ed25519.pub"
        checked = subprocess.run(
            [
                sys.executable,
                "-m",
                "garrison",
                "store",
                "check-proof",
                str(proof),
                "--public-key",
                str(key),
            ],
            env=garrison_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout
        assert checked.stdout.startswith("valid:")
        quarantined = cli(
            running.data_dir, "logs", "search", "--stream", "quarantine", "--format", "jsonl"
        )
        assert "not json" in quarantined.stdout
    finally:
        assert running.stop() == 0
