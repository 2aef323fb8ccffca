"""`garrison detect replay | rules list | rules test`: the contract later checks rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

GARRISON = [sys.executable, "-m", "garrison"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI with no settings, no data dir and no GARRISON_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    return subprocess.run(
        [*GARRISON, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def _brute_force_log(tmp_path: Path) -> Path:
    log = tmp_path / "auth.log"
    lines = [
        f"Dec  1 10:00:{2 * n:02d} web-1 sshd[{100 + n}]: Failed password for invalid user "
        f"admin{n} from 203.0.113.5 port {4000 + n} ssh2"
        for n in range(12)
    ]
    lines.append(
        "Dec  1 10:05:00 web-1 sshd[200]: Accepted password for admin3 from 203.0.113.5 port 50"
    )
    log.write_text("\n".join(lines) + "\n")
    return log


def test_replay_prints_findings_as_json_lines_without_a_data_dir(tmp_path: Path) -> None:
    log = _brute_force_log(tmp_path)
    result = _run("detect", "replay", "--format", "sshd", str(log), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    findings = [json.loads(line) for line in result.stdout.splitlines()]
    by_rule = {f["rule"]: f for f in findings}
    brute = by_rule["ssh_bruteforce_fast"]
    assert brute["type"] == "UnauthorizedAccess:EC2/SSHBruteForce"
    assert isinstance(brute["severity"], float)
    assert brute["src_ip"] == "203.0.113.5"
    assert brute["count"] == 12
    assert brute["first_seen"].endswith("Z")
    assert brute["first_seen"] < brute["last_seen"]
    assert brute["evidence"][0] == f"{log}:1"
    success = by_rule["ssh_success_after_bruteforce"]
    assert success["severity"] >= 7
    assert success["user"] == "admin3"  # who got in
    for finding in findings:
        assert {"type", "severity", "title", "first_seen", "last_seen", "count"} <= set(finding)
    assert not (tmp_path / "garrison-data").exists()


def test_replay_with_a_user_folder_and_no_catalog(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mine.yml").write_text(
        textwrap.dedent(
            """
            title: deploy logs in
            name: deploy_login
            id: aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
            logsource: {product: linux, service: sshd}
            detection:
              sel: {outcome: success, user: admin3}
              condition: sel
            level: low
            """
        )
    )
    (rules / "broken.yml").write_text("title: [")
    log = _brute_force_log(tmp_path)
    result = _run(
        "detect",
        "replay",
        "--format",
        "sshd",
        "--rules",
        str(rules),
        "--no-catalog",
        str(log),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(x)["rule"] for x in result.stdout.splitlines()] == ["deploy_login"]
    assert "broken.yml" in result.stderr
    assert "rule skipped" in result.stderr


def test_replay_refuses_unknown_formats_and_missing_files(tmp_path: Path) -> None:
    bad_format = _run("detect", "replay", "--format", "syslog", "x.log", cwd=tmp_path)
    assert bad_format.returncode == 2
    assert "unknown format 'syslog'" in bad_format.stderr
    missing = _run("detect", "replay", "--format", "sshd", "nope.log", cwd=tmp_path)
    assert missing.returncode == 2
    assert "nope.log is not a file" in missing.stderr


def test_rules_list_and_test(tmp_path: Path) -> None:
    listed = _run("detect", "rules", "list", cwd=tmp_path)
    assert listed.returncode == 0
    assert "ssh_bruteforce_fast" in listed.stdout
    tested = _run("detect", "rules", "test", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout
    assert "cases passed" in tested.stdout
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "r.yml").write_text(
        textwrap.dedent(
            """
            title: root
            name: root_any
            id: bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
            logsource: {product: linux, service: sshd}
            detection:
              sel: {user: root}
              condition: sel
            garrison:
              tests:
                - name: wrongly expects nothing
                  format: sshd
                  lines:
                    - "Dec  1 10:00:00 h sshd[1]: Failed password for root from 192.0.2.1 port 1"
                  expect: 0
            """
        )
    )
    failing = _run("detect", "rules", "test", str(folder), cwd=tmp_path)
    assert failing.returncode == 1
    assert "FAIL root_any: wrongly expects nothing (expected 0, found 1)" in failing.stdout
