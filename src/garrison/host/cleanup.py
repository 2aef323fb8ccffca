"""The declared cleanup: free space by rotating logs and emptying cache directories, and
nothing else.

The agent runs as root, and the directories it cleans are often writable by the application:
every step is made so that someone who can write there cannot turn a cleanup against other
files.

- Paths are checked when the cleanup is declared: absolute, no wildcard but in the last
  component, not a system directory (`PROTECTED`), not Garrison's data, not inside or holding a
  database's data (a `MARKERS` file in the directory or any directory above it).
- At run time each declared directory is opened without following a symbolic link and must
  still be the directory that was checked; everything below it is reached through directory
  descriptors (``os.fwalk``, ``dir_fd``), so a name swapped for a link mid-way is not followed.
- Rotation opens each log without following links and checks it is a regular file with one
  name (a hard link could be any file of the same file system), copies it compressed into a
  new file created exclusively (``O_EXCL``, with the log's owner and mode), then truncates the
  same descriptor: the writer keeps appending to its file.
- A directory that holds a database's data (found while walking) is left alone, and said so.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import gzip
import os
import re
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from garrison.host.remediate import Outcome

#: Never cleaned, nor anything inside them.
PROTECTED: Final = tuple(
    Path(p)
    for p in ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run",
              "/sbin", "/sys", "/usr", "/var/lib/postgresql", "/var/lib/pgsql",
              "/var/lib/garrison")
)  # fmt: skip
#: A directory holding one of these is a database's or Garrison's: neither it nor anything
#: below it is cleaned.
MARKERS: Final = frozenset(
    {"PG_VERSION", "pg_wal", "pg_xlog", "pg_tblspc", "archive_status", "backup_label",
     "postmaster.pid", "kek.key", "logstore"}
)  # fmt: skip
#: WAL segment names and tablespace directories (``PG_15_202209061``).
_DATABASE_NAMES: Final = re.compile(r"^(?:[0-9A-F]{24}(?:\.partial)?|PG_\d+_\d+)$")
_GLOB: Final = re.compile(r"[*?\[]")
_OPEN_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def holds_data(names: Iterable[str]) -> bool:
    """Whether a directory with these entries holds a database's or Garrison's data."""
    return any(n in MARKERS or _DATABASE_NAMES.match(n) for n in names)


def _listing(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def refuse_protected(path: Path, protected: Iterable[Path] = ()) -> None:
    """`ValueError` when a cleanup may not be declared on `path`."""
    resolved = path.resolve()
    for guarded in (*PROTECTED, *(p.resolve() for p in protected)):
        if resolved == guarded or (guarded != Path("/") and guarded in resolved.parents):
            raise ValueError(f"{path}: cleanups never touch {guarded} or anything inside it")
        if resolved in guarded.parents:
            raise ValueError(f"{path}: it holds {guarded}, which cleanups never touch")
    for directory in (resolved, *resolved.parents):
        if directory.name in MARKERS or holds_data(_listing(directory)):
            raise ValueError(f"{path}: a database's or Garrison's data is at {directory}")


@dataclass(frozen=True)
class Cleanup:
    """Rotate the logs matching `rotate` (keeping the newest `keep` rotations of each) and empty
    the directories in `clear` (their contents; not following links, not entering another file
    system)."""

    rotate: tuple[str, ...] = ()
    clear: tuple[str, ...] = ()
    keep: int = 2
    protected: tuple[Path, ...] = field(default=())
    kind: str = "cleanup"

    def __post_init__(self) -> None:
        if not self.rotate and not self.clear:
            raise ValueError("a cleanup declares files to rotate or directories to clear")
        for pattern in self.rotate:
            folder = Path(pattern).parent
            if not pattern.startswith("/") or _GLOB.search(str(folder)):
                raise ValueError(
                    f"{pattern}: a rotate pattern is an absolute path with wildcards only in its "
                    "file name, e.g. /var/log/app/*.log"
                )
            refuse_protected(folder, self.protected)
        for directory in self.clear:
            if not directory.startswith("/") or _GLOB.search(directory):
                raise ValueError(f"{directory}: clear takes absolute directories, no wildcards")
            refuse_protected(Path(directory), self.protected)
        for folder in (*(Path(p).parent for p in self.rotate), *map(Path, self.clear)):
            if folder.resolve() != folder:
                raise ValueError(
                    f"{folder} is reached through a symbolic link: declare {folder.resolve()}"
                )

    def describe(self) -> str:
        parts = [f"rotate {', '.join(self.rotate)}"] if self.rotate else []
        parts += [f"clear {', '.join(self.clear)}"] if self.clear else []
        return "; ".join(parts)

    def run(self) -> Outcome:
        freed = 0
        problems: list[str] = []
        skipped: list[str] = []
        for pattern in self.rotate:
            folder = Path(pattern).parent
            with _Directory(folder, self.protected, problems) as fd:
                if fd is not None:
                    freed += self._rotate_all(fd, folder, Path(pattern).name, problems)
        for directory in self.clear:
            with _Directory(Path(directory), self.protected, problems) as fd:
                if fd is not None:
                    freed += self._clear(fd, directory, problems, skipped)
        said = [*problems, *(f"{s}: a database's or Garrison's data, left alone" for s in skipped)]
        detail = f"freed {freed} bytes" + (f"; {'; '.join(said[:5])}" if said else "")
        return Outcome(not problems, detail)

    def _rotate_all(self, dir_fd: int, folder: Path, pattern: str, problems: list[str]) -> int:
        names = os.listdir(dir_fd)
        if holds_data(names):
            problems.append(f"{folder}: holds a database's or Garrison's data; not rotated")
            return 0
        freed = 0
        for name in sorted(fnmatch.filter(names, pattern)):
            if not name.endswith(".gz"):
                freed += self._rotate(dir_fd, folder, name, problems)
        return freed

    def _rotate(self, dir_fd: int, folder: Path, name: str, problems: list[str]) -> int:
        try:
            fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError:
            return 0  # a link, or gone meanwhile: not ours to rotate
        with os.fdopen(fd, "r+b") as source:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or not info.st_size:
                return 0
            if info.st_nlink > 1:  # the same file under another name, perhaps not a log at all
                problems.append(f"{folder / name}: has {info.st_nlink} hard links; not rotated")
                return 0
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
            target = f"{name}.{stamp}.gz"
            try:
                out = os.open(
                    target,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                    stat.S_IMODE(info.st_mode),
                    dir_fd=dir_fd,
                )
                os.fchown(out, info.st_uid, info.st_gid)
                with os.fdopen(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)
                os.ftruncate(fd, 0)
                compressed = os.stat(target, dir_fd=dir_fd).st_size
            except OSError as exc:
                problems.append(f"{folder / name}: {exc.strerror or exc}")
                return 0
        freed = info.st_size - compressed
        rotations = sorted(fnmatch.filter(os.listdir(dir_fd), f"{_literal(name)}.*.gz"))
        for old in rotations[: max(0, len(rotations) - self.keep)]:
            try:
                size = os.stat(old, dir_fd=dir_fd, follow_symlinks=False).st_size
                os.unlink(old, dir_fd=dir_fd)  # a link is removed, never its target
            except OSError as exc:
                problems.append(f"{folder / old}: {exc.strerror or exc}")
            else:
                freed += size
        return freed

    @staticmethod
    def _clear(top_fd: int, top: str, problems: list[str], skipped: list[str]) -> int:
        device = os.fstat(top_fd).st_dev
        freed = 0
        kept: list[str] = []
        for path, dirs, files, fd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False):
            shown = os.path.normpath(os.path.join(top, path))
            if holds_data([*dirs, *files]):
                skipped.append(shown)
                kept.append(path)
                dirs.clear()
                continue
            for name in list(dirs):
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    files.append(name)  # the link goes; what it points to is not entered
                    dirs.remove(name)
                elif info.st_dev != device:
                    dirs.remove(name)  # another file system mounted here: left alone
                    kept.append(os.path.join(path, name))
            for name in files:
                try:
                    size = os.stat(name, dir_fd=fd, follow_symlinks=False).st_size
                    os.unlink(name, dir_fd=fd)
                except OSError as exc:
                    problems.append(f"{shown}/{name}: {exc.strerror or exc}")
                else:
                    freed += size
        for path, dirs, _, fd in os.fwalk(".", dir_fd=top_fd, topdown=False, follow_symlinks=False):
            for name in dirs:
                inner = os.path.join(path, name)
                if any(inner == k or inner.startswith(k + "/") or k.startswith(inner + "/")
                       for k in kept):  # fmt: skip
                    continue
                try:
                    os.rmdir(name, dir_fd=fd)
                except OSError:
                    continue  # not empty: something was left alone in it
        return freed


def _literal(name: str) -> str:
    """`name` with fnmatch's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)


class _Directory:
    """A declared directory opened without following a link, and still the checked one."""

    def __init__(self, path: Path, protected: tuple[Path, ...], problems: list[str]) -> None:
        self.path, self.protected, self.problems = path, protected, problems
        self.fd: int | None = None

    def __enter__(self) -> int | None:
        try:
            refuse_protected(self.path, self.protected)  # as it is now, not as declared
            if self.path.resolve() != self.path:
                raise ValueError(f"{self.path}: a symbolic link on the way; not followed")
            self.fd = os.open(self.path, _OPEN_DIR)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.problems.append(f"{self.path}: {getattr(exc, 'strerror', None) or exc}")
            return None
        return self.fd

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
