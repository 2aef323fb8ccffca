"""Following real journal files (written by systemd-journal-remote) through real journalctl."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from garrison.events.parsers import line_parser
from garrison.pipeline.journal import JournalLine, JournalTailer, entry_line
from tests.pipeline.journals import FAILED, needs_journal_remote, sshd_entry, write_journal

pytestmark = needs_journal_remote


def read_all(tailer: JournalTailer, want: int, limit: int = 1000) -> list[JournalLine]:
    """Poll until `want` lines came (journalctl starts asynchronously)."""
    lines: list[JournalLine] = []
    deadline = time.monotonic() + 20
    while len(lines) < want and time.monotonic() < deadline:
        lines += tailer.poll(limit)
        time.sleep(0.02)
    return lines


def test_entries_become_syslog_lines_the_sshd_parser_reads(tmp_path: Path) -> None:
    """Exact time from the entry, host, identifier (sshd-session too), pid, IPv6 source."""
    write_journal(tmp_path, [sshd_entry(0), sshd_entry(1)])
    with JournalTailer("ssh.service", tmp_path / "cursor.json", directory=tmp_path) as tailer:
        lines = read_all(tailer, 2)
    assert [line.data for line in lines] == [
        b"2026-12-01T08:00:00.000000Z web-1 sshd[4000]: " + FAILED % (b"1", 1000),
        b"2026-12-01T08:00:01.000001Z web-1 sshd-session[4001]: " + FAILED % (b"2", 1001),
    ]
    parse = line_parser("sshd")
    event = parse(lines[1].data)
    assert (event["time"], event["src_ip"], event["outcome"], event["user"]) == (
        "2026-12-01T08:00:01.000001Z",
        "2001:db8::2",
        "failure",
        "root",
    )


def test_unit_filter_and_restart_resume_exactly_after_the_cursor(tmp_path: Path) -> None:
    """Only the unit's entries; a committed cursor survives a restart; new files are followed."""
    cursor = tmp_path / "state" / "cursor.json"
    write_journal(
        tmp_path, [sshd_entry(n, "ssh.service" if n % 3 else "cron.service") for n in range(9)]
    )
    with JournalTailer("ssh.service", cursor, directory=tmp_path) as tailer:
        first = read_all(tailer, 6, limit=4)
        assert len(first) == 6
        tailer.commit(first[3].position)  # lines 4-5 were read but not handed on
    with JournalTailer("ssh.service", cursor, directory=tmp_path) as tailer:
        again = read_all(tailer, 2)
        assert [line.data for line in again] == [line.data for line in first[4:]]
        write_journal(tmp_path, [sshd_entry(n) for n in range(9, 12)])  # while following
        later = read_all(tailer, 3)
    ports = [int(line.data.rsplit(b" port ", 1)[1].split()[0]) for line in later]
    assert ports == [1009, 1010, 1011]
    assert cursor.stat().st_mode & 0o777 == 0o600


def test_binary_message_and_missing_fields_do_not_break_the_line() -> None:
    """journalctl's byte arrays for non-UTF-8 fields, and entries without pid or identifier."""
    line = entry_line(
        {
            "__REALTIME_TIMESTAMP": "0",
            "_COMM": "app",
            "MESSAGE": [104, 105, 0xFF],
        }
    )
    assert line == b"1970-01-01T00:00:00.000000Z - app: hi\\xff"


def test_journalctl_failure_is_logged_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A journal directory that cannot be read: an error naming journalctl's reason, no lines."""
    missing = tmp_path / "nothing-here"
    with JournalTailer(None, tmp_path / "c.json", directory=missing) as tailer:
        deadline = time.monotonic() + 10
        while "journalctl exited" not in caplog.text and time.monotonic() < deadline:
            assert tailer.poll() == []
            time.sleep(0.05)
    assert "journalctl exited" in caplog.text
