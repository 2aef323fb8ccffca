"""The tailer: lines across rotation, copytruncate, deletion and restarts, nothing lost twice."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.core.errors import UsageError
from garrison.pipeline.tail import CursorError, Line, Tailer

BOUNDED = settings(derandomize=True, max_examples=150, deadline=None, database=None)


def append(path: Path, data: bytes) -> None:
    """Append like a logging daemon: open with O_APPEND, write, close."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def data(lines: list[Line]) -> list[bytes]:
    return [line.data for line in lines]


def drain(tailer: Tailer, max_lines: int = 1000) -> list[Line]:
    """Poll until a poll comes back short (the tailer is at the end of the current file)."""
    out: list[Line] = []
    while True:
        got = tailer.poll(max_lines)
        out += got
        if len(got) < max_lines:
            return out


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "auth.log"


@pytest.fixture
def cursor(tmp_path: Path) -> Path:
    return tmp_path / "state" / "auth.cursor"


@pytest.fixture
def tailer(log_path: Path, cursor: Path) -> Iterator[Tailer]:
    log_path.parent.mkdir()
    with Tailer(log_path, cursor) as t:
        yield t


def test_append_poll_commit_round_trip(tailer: Tailer, log_path: Path, cursor: Path) -> None:
    append(log_path, b"one\ntwo\n")
    lines = tailer.poll()
    assert data(lines) == [b"one", b"two"]
    assert lines[0].position.offset == 4
    assert lines[1].position.offset == 8
    assert tailer.poll() == []
    tailer.commit(lines[-1].position)
    assert cursor.exists()
    assert not cursor.with_name(cursor.name + ".tmp").exists()
    append(log_path, b"three\n")
    assert data(tailer.poll()) == [b"three"]


def test_max_lines_bounds_a_poll(tailer: Tailer, log_path: Path) -> None:
    append(log_path, b"".join(b"l%d\n" % i for i in range(10)))
    assert data(tailer.poll(3)) == [b"l0", b"l1", b"l2"]
    assert data(tailer.poll(3)) == [b"l3", b"l4", b"l5"]
    assert data(tailer.poll()) == [b"l6", b"l7", b"l8", b"l9"]
    with pytest.raises(UsageError):
        tailer.poll(0)


def test_partial_last_line_is_held_back(tailer: Tailer, log_path: Path) -> None:
    append(log_path, b"done\nhalf")
    assert data(tailer.poll()) == [b"done"]
    assert tailer.poll() == []
    append(log_path, b" way\n")
    lines = tailer.poll()
    assert data(lines) == [b"half way"]
    assert lines[0].position.offset == len(b"done\nhalf way\n")


def test_overlong_line_comes_in_pieces(log_path: Path, cursor: Path) -> None:
    log_path.parent.mkdir()
    append(log_path, b"abcdefghij\n")
    with Tailer(log_path, cursor, max_line_bytes=4) as tailer:
        assert data(tailer.poll()) == [b"abcd", b"efgh", b"ij"]


def test_missing_file_is_waited_for(tailer: Tailer, log_path: Path) -> None:
    assert tailer.poll() == []
    assert tailer.position is None
    append(log_path, b"first\n")
    assert data(tailer.poll()) == [b"first"]


def test_rotation_by_rename_reads_the_old_file_to_its_end(tailer: Tailer, log_path: Path) -> None:
    append(log_path, b"a1\na2\n")
    assert data(tailer.poll(1)) == [b"a1"]
    append(log_path, b"a3\nunfin")  # unread lines and an unfinished one in the old file
    log_path.rename(log_path.with_name("auth.log.1"))
    append(log_path, b"b1\nb2\n")
    assert data(tailer.poll()) == [b"a2", b"a3", b"unfin", b"b1", b"b2"]
    append(log_path, b"b3\n")
    assert data(tailer.poll()) == [b"b3"]


def test_rotation_keeps_reading_while_the_writer_still_appends_to_the_old_file(
    tailer: Tailer, log_path: Path
) -> None:
    append(log_path, b"a1\n")
    assert data(tailer.poll()) == [b"a1"]
    rotated = log_path.with_name("auth.log.1")
    log_path.rename(rotated)
    append(rotated, b"a2\n")  # the daemon has not reopened yet: no new file at the path
    assert data(tailer.poll()) == [b"a2"]
    append(log_path, b"b1\n")
    assert data(tailer.poll()) == [b"b1"]


def test_rotation_with_a_small_max_lines(tailer: Tailer, log_path: Path) -> None:
    append(log_path, b"a1\na2\na3\na4\n")
    assert data(tailer.poll(1)) == [b"a1"]
    log_path.rename(log_path.with_name("auth.log.1"))
    append(log_path, b"b1\nb2\n")
    assert data(tailer.poll(2)) == [b"a2", b"a3"]
    assert data(tailer.poll(2)) == [b"a4", b"b1"]
    assert data(tailer.poll(2)) == [b"b2"]


def test_copytruncate_restarts_at_zero(tailer: Tailer, log_path: Path) -> None:
    append(log_path, b"old1\nold2\n")
    assert data(tailer.poll()) == [b"old1", b"old2"]
    os.truncate(log_path, 0)
    append(log_path, b"new1\n")
    assert data(tailer.poll()) == [b"new1"]


def test_copytruncate_refilled_past_the_offset_is_noticed(tailer: Tailer, log_path: Path) -> None:
    append(log_path, b"x\n")
    assert data(tailer.poll()) == [b"x"]
    os.truncate(log_path, 0)
    append(log_path, b"yy\nzz\n")  # longer than before: only the first bytes tell
    assert data(tailer.poll()) == [b"yy", b"zz"]


def test_delete_and_recreate(tailer: Tailer, log_path: Path) -> None:
    append(log_path, b"a1\na2\n")
    assert data(tailer.poll(1)) == [b"a1"]
    log_path.unlink()
    assert data(tailer.poll()) == [b"a2"]  # still readable through the open descriptor
    assert tailer.poll() == []
    append(log_path, b"b1\n")
    assert data(tailer.poll()) == [b"b1"]


def test_restart_resumes_at_the_committed_cursor(log_path: Path, cursor: Path) -> None:
    log_path.parent.mkdir()
    append(log_path, b"l1\nl2\nl3\n")
    with Tailer(log_path, cursor) as first:
        lines = first.poll()
        first.commit(lines[1].position)  # l3 read but never handed on
    append(log_path, b"l4\n")
    with Tailer(log_path, cursor) as second:
        assert data(second.poll()) == [b"l3", b"l4"]


def test_restart_after_rotation_while_stopped_finishes_the_old_file(
    log_path: Path, cursor: Path
) -> None:
    log_path.parent.mkdir()
    append(log_path, b"a1\na2\n")
    with Tailer(log_path, cursor) as first:
        first.commit(first.poll(1)[0].position)
    append(log_path, b"a3\n")
    log_path.rename(log_path.with_name("auth.log.1"))
    append(log_path, b"b1\n")
    with Tailer(log_path, cursor) as second:
        assert data(second.poll()) == [b"a2", b"a3", b"b1"]


def test_restart_with_the_file_replaced_reads_the_new_one_from_zero(
    log_path: Path, cursor: Path
) -> None:
    log_path.parent.mkdir()
    append(log_path, b"a1\na2\n")
    with Tailer(log_path, cursor) as first:
        first.commit(first.poll()[-1].position)
    log_path.unlink()
    append(log_path, b"b1\nb2\nb3\n")  # may well reuse the inode: the fingerprint differs
    with Tailer(log_path, cursor) as second:
        assert data(second.poll()) == [b"b1", b"b2", b"b3"]


def test_restart_after_copytruncate_while_stopped_reads_from_zero(
    log_path: Path, cursor: Path
) -> None:
    log_path.parent.mkdir()
    append(log_path, b"a1\na2\n")
    with Tailer(log_path, cursor) as first:
        first.commit(first.poll()[-1].position)
    os.truncate(log_path, 0)
    append(log_path, b"b1\nb2\nb3\n")  # longer than the cursor's offset
    with Tailer(log_path, cursor) as second:
        assert data(second.poll()) == [b"b1", b"b2", b"b3"]


def test_restart_after_copytruncate_then_rotation_while_stopped(
    log_path: Path, cursor: Path
) -> None:
    log_path.parent.mkdir()
    append(log_path, b"a1\n")
    with Tailer(log_path, cursor) as first:
        first.commit(first.poll()[-1].position)
    os.truncate(log_path, 0)
    append(log_path, b"b1\n")
    log_path.rename(log_path.with_name("auth.log.1"))
    append(log_path, b"c1\n")
    with Tailer(log_path, cursor) as second:
        assert data(second.poll()) == [b"b1", b"c1"]


def test_restart_with_the_file_missing_waits(log_path: Path, cursor: Path) -> None:
    log_path.parent.mkdir()
    append(log_path, b"a1\n")
    with Tailer(log_path, cursor) as first:
        first.commit(first.poll()[-1].position)
    log_path.unlink()
    with Tailer(log_path, cursor) as second:
        assert second.poll() == []
        append(log_path, b"b1\n")
        assert data(second.poll()) == [b"b1"]


def test_position_follows_a_switch_to_an_empty_new_file(tailer: Tailer, log_path: Path) -> None:
    append(log_path, b"a1\n")
    lines = tailer.poll()
    log_path.rename(log_path.with_name("auth.log.1"))
    log_path.touch()
    assert tailer.poll() == []
    assert tailer.position is not None
    assert tailer.position.inode == os.stat(log_path).st_ino
    assert tailer.position != lines[-1].position


def test_a_damaged_cursor_is_refused(log_path: Path, cursor: Path) -> None:
    cursor.parent.mkdir()
    cursor.write_bytes(b"{not json")
    with pytest.raises(CursorError, match="damaged"):
        Tailer(log_path, cursor)


# --- the property: a model of what was written ------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 4), st.booleans()),
        st.tuples(st.just("poll"), st.integers(1, 5), st.booleans()),
        st.tuples(st.just("rotate"), st.just(0), st.booleans()),
        st.tuples(st.just("truncate"), st.just(0), st.just(False)),
        st.tuples(st.just("restart"), st.just(0), st.just(False)),
    ),
    max_size=40,
)


class Model:
    """Drives a real `Tailer` and keeps what it must have delivered.

    ``expected`` holds every line that must come out, in order; ``delivered`` what came out
    since the last commit survived; a restart forgets the uncommitted part, which must then be
    delivered again. Rotation and truncation first catch up and commit, as the agent does
    within one poll interval: a file rotated twice before it was ever opened, or lines cut by
    copytruncate before they were read, are outside what any tailer can promise.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / "app.log"
        self.cursor = root / "app.cursor"
        self.tailer = Tailer(self.path, self.cursor)
        self.expected: list[bytes] = []
        self.partial = b""  # unfinished last line of the current file
        self.delivered: list[bytes] = []
        self.committed = 0
        self.counter = 0
        self.rotations = 0
        self.cursor_current = False  # the tailer holds the file at the path, the cursor names it

    def append(self, count: int, unfinished: bool) -> None:
        if not self.path.exists():
            self.cursor_current = False  # a new file the tailer has not seen yet
        chunk = b""
        for _ in range(count):
            self.counter += 1
            text = b"line-%04d" % self.counter
            chunk += text + b"\n"
            self.expected.append(self.partial + text)
            self.partial = b""
        if unfinished:
            self.counter += 1
            text = b"part-%04d" % self.counter
            chunk += text
            self.partial += text
        append(self.path, chunk)

    def poll(self, max_lines: int, commit: bool) -> list[Line]:
        lines = self.tailer.poll(max_lines)
        self.delivered += data(lines)
        assert self.delivered == self.expected[: len(self.delivered)]
        if commit:
            position = self.tailer.position
            if position is not None:
                self.tailer.commit(position)
            self.committed = len(self.delivered)
        return lines

    def catch_up(self) -> None:
        while len(self.poll(5, commit=True)) == 5:
            pass
        self.cursor_current = self.path.exists()

    def rotate(self, recreate: bool) -> None:
        if not self.cursor_current:
            self.catch_up()
        self.rotations += 1
        if self.path.exists():
            self.path.rename(self.path.with_name(f"app.log.{self.rotations}"))
            if self.partial:  # handed out as a line when the tailer leaves the file
                self.expected.append(self.partial)
                self.partial = b""
        if recreate:
            self.path.touch()
        self.cursor_current = False

    def truncate(self) -> None:
        if not self.path.exists():
            return
        self.catch_up()
        os.truncate(self.path, 0)
        self.partial = b""

    def restart(self) -> None:
        self.tailer.close()
        del self.delivered[self.committed :]
        self.tailer = Tailer(self.path, self.cursor)

    def finish(self) -> None:
        if self.partial:
            append(self.path, b"\n")
            self.expected.append(self.partial)
            self.partial = b""
        if not self.path.exists():
            self.path.touch()
        self.catch_up()
        self.tailer.close()
        assert self.delivered == self.expected


@BOUNDED
@given(OPS)
def test_no_committed_line_is_lost_or_duplicated(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, bool]]
) -> None:
    model = Model(tmp_path_factory.mktemp("prop"))
    for op, number, flag in ops:
        if op == "append":
            if model.path.exists() or flag:
                model.append(number, flag)
        elif op == "poll":
            model.poll(number, flag)
        elif op == "rotate":
            model.rotate(flag)
        elif op == "truncate":
            model.truncate()
        else:
            model.restart()
    model.finish()


def test_commit_fsyncs_the_cursor_and_its_directory(
    tailer: Tailer, log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(log_path, b"x\n")
    (line,) = tailer.poll()
    synced: list[bool] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    tailer.commit(line.position)
    assert synced == [False, True]
