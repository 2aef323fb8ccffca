"""`garrison logs parse` prints normalized events; `logs import --format sshd` stores them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli import garrison

LINES = [
    (
        b"Dec 31 23:59:58 bastion sshd[7]: Failed password for invalid user oracle from "
        b"2001:db8::7 port 50022 ssh2"
    ),
    (
        b"Dec 31 23:59:59 bastion sshd[7]: Connection closed by invalid user oracle 2001:db8::7 "
        b"port 50022 [preauth]"
    ),
    b"something no parser knows",
    b"Jan  1 00:00:01 bastion sshd[8]: \xff not UTF-8",
]


def sample(tmp_path: Path) -> Path:
    """An sshd log with two failures, one unknown line and one undecodable line."""
    path = tmp_path / "auth.log"
    path.write_bytes(b"\n".join(LINES) + b"\n\n")
    return path


def test_logs_parse_prints_json_lines(tmp_path: Path) -> None:
    """One JSON event per non-blank line on stdout, times resolved against --reference."""
    proc = garrison(
        "logs",
        "parse",
        "--format",
        "sshd",
        "--reference",
        "2027-01-01T00:00:30Z",
        "--zone",
        "UTC",
        str(sample(tmp_path)),
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(events) == 4
    assert events[0]["time"] == "2026-12-31T23:59:58Z"
    assert (events[0]["src_ip"], events[0]["outcome"]) == ("2001:db8::7", "failure")
    assert events[1]["class"] == "authentication"
    assert events[2]["class"] == "raw"
    assert events[3]["reason"].startswith("not UTF-8")
    assert events[3]["time"] == "2027-01-01T00:00:30Z"


def test_logs_parse_refuses_unknown_format(tmp_path: Path) -> None:
    """An unknown format is a usage error, exit 2."""
    proc = garrison("logs", "parse", "--format", "nope", str(sample(tmp_path)))
    assert proc.returncode == 2
    assert "unknown format" in proc.stderr


def test_logs_import_sshd(tmp_path: Path) -> None:
    """Parsed and raw lines go to the stream; only the undecodable line is quarantined."""
    data = tmp_path / "data"
    proc = garrison(
        "logs",
        "import",
        "--stream",
        "ssh",
        "--format",
        "sshd",
        "--reference",
        "2027-01-01T00:00:30Z",
        str(sample(tmp_path)),
        data_dir=data,
    )
    assert proc.returncode == 0, proc.stderr
    assert "imported 3 events into ssh" in proc.stdout
    assert "1 malformed lines" in proc.stdout
    found = garrison(
        "logs",
        "search",
        "--stream",
        "ssh",
        "--format",
        "jsonl",
        "--oldest-first",
        "src_ip=2001:db8::7",
        data_dir=data,
    )
    assert found.returncode == 0, found.stderr
    events = [json.loads(line) for line in found.stdout.splitlines()]
    assert [e["class"] for e in events] == ["authentication", "authentication"]
    assert events[0]["user"] == "oracle"
    everything = garrison(
        "logs", "search", "--stream", "ssh", "--format", "jsonl", data_dir=data
    ).stdout
    assert '"class":"raw"' in everything
    quarantined = garrison(
        "logs", "search", "--stream", "quarantine", "--format", "jsonl", data_dir=data
    )
    (bad,) = [json.loads(line) for line in quarantined.stdout.splitlines()]
    assert bad["reason"].startswith("not UTF-8")
    assert bad["line_number"] == 4
