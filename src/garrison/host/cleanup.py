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
  Only what the log held when it was opened is copied (a writer racing it, or a sparse file,
  cannot make the copy endless); lines written between the copy and the truncation are lost,
  as with logrotate's copytruncate. A rotation that fails removes its partial copy.
- Rotation needs the kernel's ``fs.protected_hardlinks`` (systemd's default): without it,
  anyone who can write in the log's directory could link any file of the file system there and
  have it truncated, whatever is checked before.
- Clearing stays on the declared directory's mount (a bind mount of the same file system
  inside it is another mount, and left alone), and never empties a directory like ``/home``,
  ``/var/log`` or ``/tmp`` whole.
- A directory that holds a database's data (found while walking) is left alone, and said so.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import gzip
import os
import re
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
              "/var/lib/mysql", "/var/lib/mongodb", "/var/lib/redis", "/var/lib/docker",
              "/var/lib/containerd", "/var/lib/garrison")
)  # fmt: skip
#: Never emptied whole by `clear` (a directory inside one may be).
NOT_CLEARED: Final = tuple(
    Path(p)
    for p in ("/home", "/srv", "/opt", "/tmp", "/var", "/var/log", "/var/lib", "/var/spool",  # noqa: S108  # nosec B108  # never emptied, not used
              "/var/mail", "/var/backups", "/var/cache", "/var/tmp", "/mnt", "/media")  # noqa: S108  # nosec B108
)  # fmt: skip
#: A directory holding one of these is a database's or Garrison's: neither it nor anything
#: below it is cleaned (PostgreSQL, MySQL/MariaDB, MongoDB, Redis, Garrison).
MARKERS: Final = frozenset(
    {"PG_VERSION", "pg_wal", "pg_xlog", "pg_tblspc", "archive_status", "backup_label",
     "postmaster.pid", "ibdata1", "mysql.ibd", "WiredTiger", "mongod.lock", "dump.rdb",
     "appendonly.aof", "kek.key", "logstore"}
)  # fmt: skip
PROTECTED_HARDLINKS: Final = Path("/proc/sys/fs/protected_hardlinks")
#: A log whose blocks hold less than this share of its size is sparse: not a log to rotate.
SPARSE_RATIO: Final = 0.5
#: WAL segment names and tablespace directories (``PG_15_202209061``).
_DATABASE_NAMES: Final = re.compile(r"^(?:[0-9A-F]{24}(?:\.partial)?|PG_\d+_\d+)$")
_STAMP: Final = r"\.\d{8}T\d{12}\.gz"
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
        if self.keep < 1:
            raise ValueError("keep is at least 1 (the rotation just made)")
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
            resolved = Path(directory).resolve()
            for whole in NOT_CLEARED:
                if resolved == whole or resolved in whole.parents:
                    raise ValueError(
                        f"{directory}: clear never empties {whole} whole; name the cache inside it"
                    )
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
        if not hardlinks_protected():
            problems.append(
                f"{folder}: not rotated: fs.protected_hardlinks is off, so whoever can write "
                "there could have any file of the file system truncated; turn it on "
                "(sysctl fs.protected_hardlinks=1)"
            )
            return 0
        names = os.listdir(dir_fd)
        if holds_data(names):
            problems.append(f"{folder}: holds a database's or Garrison's data; not rotated")
            return 0
        freed = 0
        for name in sorted(fnmatch.filter(names, pattern)):
            if name.endswith(".gz"):
                continue
            try:
                freed += self._rotate(dir_fd, folder, name, problems)
            except OSError as exc:
                problems.append(f"{folder / name}: {exc.strerror or exc}")
        return freed

    def _rotate(self, dir_fd: int, folder: Path, name: str, problems: list[str]) -> int:
        try:
            fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError:
            return 0  # a link, or gone meanwhile: not ours to rotate
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or not info.st_size:
                return 0  # a FIFO, a device, a socket, or empty
            if info.st_nlink > 1:  # the same file under another name, perhaps not a log at all
                problems.append(f"{folder / name}: has {info.st_nlink} hard links; not rotated")
                return 0
            if info.st_blocks * 512 < info.st_size * SPARSE_RATIO:
                problems.append(f"{folder / name}: sparse ({info.st_size} bytes); not rotated")
                return 0
            target = f"{name}.{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}.gz"
            compressed = self._copy(fd, info, dir_fd, target)
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
        freed = info.st_blocks * 512 - compressed
        pattern = re.compile(re.escape(name) + _STAMP)
        rotations = sorted(n for n in os.listdir(dir_fd) if pattern.fullmatch(n) and n != target)
        for old in rotations[: max(0, len(rotations) - (self.keep - 1))]:
            try:
                size = os.stat(old, dir_fd=dir_fd, follow_symlinks=False).st_blocks * 512
                os.unlink(old, dir_fd=dir_fd)  # a link is removed, never its target
            except OSError as exc:
                problems.append(f"{folder / old}: {exc.strerror or exc}")
            else:
                freed += size
        return freed

    @staticmethod
    def _copy(fd: int, info: os.stat_result, dir_fd: int, target: str) -> int:
        """The first `info.st_size` bytes of `fd`, compressed into `target` (created
        exclusively, owned and moded like the log); its size on disk. A failure removes it."""
        out = os.open(
            target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd
        )
        try:
            os.fchown(out, info.st_uid, info.st_gid)
            os.fchmod(out, stat.S_IMODE(info.st_mode) & 0o777)
            left = info.st_size
            os.lseek(fd, 0, os.SEEK_SET)
            with (
                open(out, "wb", closefd=False) as raw,
                gzip.GzipFile(fileobj=raw, mode="wb") as sink,
            ):
                while left > 0 and (chunk := os.read(fd, min(left, 1024 * 1024))):
                    sink.write(chunk)
                    left -= len(chunk)
            os.fsync(out)
            return os.fstat(out).st_blocks * 512
        except BaseException:
            os.unlink(target, dir_fd=dir_fd)
            raise
        finally:
            os.close(out)

    @staticmethod
    def _clear(top_fd: int, top: str, problems: list[str], skipped: list[str]) -> int:
        where = _mount(top_fd)
        freed = 0
        kept: list[str] = []
        for path, dirs, files, fd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False):
            shown = os.path.normpath(os.path.join(top, path))
            if path != "." and _mount(fd) != where:
                kept.append(path)  # another mount (a bind mount too): left alone
                dirs.clear()
            elif holds_data([*dirs, *files]):
                skipped.append(shown)
                kept.append(path)
                dirs.clear()
            else:
                freed += _empty(fd, shown, dirs, files, problems)
        for path, dirs, _, fd in os.fwalk(".", dir_fd=top_fd, topdown=False, follow_symlinks=False):
            for name in dirs:
                inner = os.path.join(path, name)
                if any(inner == k or inner.startswith(k + "/") or k.startswith(inner + "/")
                       for k in kept):  # fmt: skip
                    continue
                try:
                    os.rmdir(name, dir_fd=fd)
                except OSError:
                    continue  # not empty (something left alone in it), or another mount
        return freed


def _empty(fd: int, shown: str, dirs: list[str], files: list[str], problems: list[str]) -> int:
    """Unlink the files (and links) of one directory, by its descriptor; bytes freed."""
    for name in list(dirs):
        try:
            linked = stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
        except OSError:
            dirs.remove(name)  # gone meanwhile
            continue
        if linked:
            files.append(name)  # the link goes; what it points to is not entered
            dirs.remove(name)
    freed = 0
    for name in files:
        try:
            size = os.stat(name, dir_fd=fd, follow_symlinks=False).st_blocks * 512
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"{shown}/{name}: {exc.strerror or exc}")
        else:
            freed += size
    return freed


def _mount(fd: int) -> tuple[int | None, int]:
    """Which mount (``/proc/self/fdinfo``'s mnt_id, None where unknown) and device a directory
    descriptor is on: a bind mount of the same file system differs by the first."""
    return mount_id(fd), os.fstat(fd).st_dev


def hardlinks_protected() -> bool:
    """Whether the kernel refuses hard links to files the linker may not write."""
    try:
        return PROTECTED_HARDLINKS.read_text().strip() == "1"
    except OSError:
        return False


def mount_id(fd: int) -> int | None:
    """The mount a directory descriptor is on (``/proc/self/fdinfo``), or None where unknown."""
    try:
        for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


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
