"""Automatic response: the block hook runs for serious new findings, never for the allowlist,
only says what it would do in dry-run, and reports failures; the detector audits each one."""

from __future__ import annotations

import stat
from pathlib import Path

from garrison.detect.respond import ScriptResponder
from tests.factories import seed_finding


def _hook(tmp_path: Path, exit_code: int = 0) -> tuple[list[str], Path]:
    log = tmp_path / "blocked.txt"
    script = tmp_path / "block.sh"
    script.write_text(
        "#!/bin/sh\n"
        'printf "%s %s %s\\n" "$GARRISON_SRC_IP" "$GARRISON_BLOCK_SECONDS"'
        f' "$(cat | head -c 20)" >> {log}\n'
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return [str(script)], log


def _serious(ip: str = "8.8.8.8") -> dict[str, object]:
    return seed_finding(severity=8.0, src_ip=ip)


def test_the_hook_blocks_a_serious_public_source(tmp_path: Path) -> None:
    command, log = _hook(tmp_path)
    responder = ScriptResponder(command, dry_run=False, block_seconds=600)
    response = responder.respond(_serious())
    assert response is not None
    assert (response.outcome, response.src_ip) == ("blocked", "8.8.8.8")
    assert log.read_text().startswith('8.8.8.8 600 {"id": "fnd_')  # the finding on stdin


def test_dry_run_allowlist_private_and_minor_findings(tmp_path: Path) -> None:
    command, log = _hook(tmp_path)
    dry = ScriptResponder(command)  # dry-run is the default
    assert dry.respond(_serious()).outcome == "dry-run"  # type: ignore[union-attr]
    live = ScriptResponder(command, dry_run=False, allow=["8.8.8.0/24"])
    assert live.respond(_serious()).outcome == "skipped"  # type: ignore[union-attr]
    assert live.respond(_serious("10.0.0.9")).outcome == "skipped"  # type: ignore[union-attr]
    assert live.respond(seed_finding(severity=5.0, src_ip="9.9.9.9")) is None
    assert not log.exists()


def test_a_failing_hook_is_reported(tmp_path: Path) -> None:
    command, _ = _hook(tmp_path, exit_code=3)
    response = ScriptResponder(command, dry_run=False).respond(_serious())
    assert response is not None
    assert response.outcome == "failed"
    assert "exit 3" in response.detail
    missing = ScriptResponder([str(tmp_path / "nope")], dry_run=False).respond(_serious())
    assert missing is not None
    assert missing.outcome == "failed"


def test_the_detector_responds_to_new_findings_and_audits_each(tmp_path: Path) -> None:
    import datetime as dt  # noqa: PLC0415

    from garrison.detect import rules  # noqa: PLC0415
    from garrison.detect.live import Detector  # noqa: PLC0415
    from garrison.events.parsers import line_parser  # noqa: PLC0415
    from garrison.logstore.store import Store  # noqa: PLC0415
    from tests.detect.test_live import MemorySink  # noqa: PLC0415

    store = Store(tmp_path / "store")
    parse = line_parser("sshd", reference_time=dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    store.append(
        "ssh",
        [
            parse(
                f"Dec  1 10:00:{2 * n:02d} h sshd[{n}]: Failed password for admin from 8.8.4.4 "
                f"port {n} ssh2"
            )
            for n in range(12)
        ]
        + [
            parse(
                "Dec  1 10:01:00 h sshd[99]: Accepted password for admin from 8.8.4.4 port 1 ssh2"
            )
        ],
    )
    command, log = _hook(tmp_path)
    audited = []
    detector = Detector(
        store,
        rules.load(),
        MemorySink(),
        tmp_path / "state.json",
        streams=["ssh"],
        responder=ScriptResponder(command, dry_run=False),
        audit=audited.append,
    )
    while detector.step():
        pass
    detector.checkpoint()
    assert [r.outcome for r in audited] == ["blocked"]  # the high one: success after brute force
    assert log.read_text().startswith("8.8.4.4 ")
    store.close()
