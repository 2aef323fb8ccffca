"""Sealing: zstd, then OpenPGP public-key encryption by gpg, streamed; and the way back.

Encryption needs only the backup's public key (``gpg --recipient-file``, in a scratch home
directory: nothing is imported into any keyring, and no secret key is ever on the database
host). Decryption imports the private key into a scratch home directory that is removed
afterwards. Nothing is staged unencrypted on disk: the source is compressed into gpg's stdin
while gpg's output is written, and hashed, as it comes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess  # nosec B404  # gpg does the OpenPGP
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import zstandard

from garrison.core.errors import GarrisonError

GPG: Final = shutil.which("gpg") or "/usr/bin/gpg"
GPGCONF: Final = shutil.which("gpgconf") or "/usr/bin/gpgconf"
CHUNK: Final = 1024 * 1024
ZSTD_LEVEL: Final = 3
STOP_GRACE_S: Final = 5.0
_GPG_BASE: Final = ("--batch", "--no-tty", "--quiet", "--no-options", "--no-auto-key-locate")


class BackupError(GarrisonError):
    """A backup, archive or restore step failed; the message says which and why."""

    code = "backup_failed"


@dataclass(frozen=True)
class Sealed:
    """What was written: the sealed file's size and SHA-256, and the plaintext's."""

    size: int
    sha256: str
    plain_size: int
    plain_sha256: str


def _gpg_error(what: str, stderr: bytes) -> BackupError:
    said = stderr.decode(errors="replace").strip().splitlines()
    return BackupError(f"gpg could not {what}: {' / '.join(said[-3:]) or 'no reason given'}")


@contextmanager
def _home() -> Iterator[str]:
    home = tempfile.mkdtemp(prefix="garrison-gpg-")
    try:
        yield home
    finally:
        subprocess.run(  # noqa: S603  # nosec B603  # fixed arguments
            [GPGCONF, "--homedir", home, "--kill", "gpg-agent"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def child(argv: list[str], **options: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A child process whose pipes are closed and which is reaped however the block ends
    (stopped first when the block ends by an exception)."""
    process = subprocess.Popen(argv, **options)  # noqa: S603  # nosec B603  # callers' fixed argv
    try:
        yield process
    except BaseException:
        stop(process)
        raise
    finally:
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                with suppress(OSError):
                    pipe.close()
        process.wait()


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a child: SIGTERM first (``runuser`` passes it on to the program it runs, which
    SIGKILL would leave running), SIGKILL if it is still there after a few seconds."""
    process.terminate()
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()


def drain(stream: IO[bytes] | None) -> tuple[threading.Thread, list[bytes]]:
    """Read a child's stderr to its end in a thread (so that it never blocks on a full pipe);
    the thread and where the bytes go."""
    into: list[bytes] = []
    thread = threading.Thread(target=lambda: into.append(stream.read() if stream else b""))
    thread.start()
    return thread, into


def key_facts(key_file: Path) -> tuple[str, bool]:
    """(fingerprint of the primary key, whether the file holds a secret key) of an armored or
    binary OpenPGP key file."""
    with _home() as home:
        shown = subprocess.run(  # noqa: S603  # nosec B603  # fixed arguments
            [GPG, *_GPG_BASE, "--homedir", home, "--with-colons", "--show-keys", str(key_file)],
            capture_output=True,
            check=False,
        )
    if shown.returncode != 0:
        raise _gpg_error(f"read the key in {key_file}", shown.stderr)
    records = [line.split(":") for line in shown.stdout.decode().splitlines()]
    fingerprints = [r[9] for r in records if r[0] == "fpr"]
    if not fingerprints:
        raise BackupError(f"{key_file} holds no OpenPGP key")
    return fingerprints[0], any(r[0] == "sec" for r in records)


def _feed(
    source: IO[bytes],
    gpg: subprocess.Popen[bytes],
    plain: hashlib._Hash,
    sizes: list[int],
    failure: list[BaseException],
) -> None:
    """Compress `source` into gpg's stdin, hashing the plaintext; then close it. When reading
    the source fails, gpg is killed first, so that it never completes a truncated message."""
    sink = gpg.stdin
    if sink is None:
        return
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    try:
        with compressor.stream_writer(sink, closefd=False) as writer:
            while True:
                try:
                    chunk = source.read(CHUNK)
                except BaseException as exc:  # handed to seal(), which raises it
                    failure.append(exc)
                    gpg.kill()
                    return
                if not chunk:
                    break
                plain.update(chunk)
                sizes[0] += len(chunk)
                writer.write(chunk)
    except OSError:
        pass  # gpg died: its exit status and words say why
    finally:
        with suppress(OSError):
            sink.close()


def seal(source: IO[bytes], destination: IO[bytes], public_key: Path) -> Sealed:
    """Compress and encrypt `source` to `public_key` into `destination` (not closed)."""
    with _home() as home:
        argv = [
            GPG, *_GPG_BASE, "--homedir", home, "--trust-model", "always",
            "--compress-algo", "none", "--recipient-file", str(public_key),
            "--output", "-", "--encrypt",
        ]  # fmt: skip
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        with child(argv, **pipes) as gpg:
            if gpg.stdin is None or gpg.stdout is None:
                raise BackupError("gpg started without pipes")
            plain, sizes = hashlib.sha256(), [0]
            failure: list[BaseException] = []
            feeder = threading.Thread(target=_feed, args=(source, gpg, plain, sizes, failure))
            feeder.start()
            reader, errors = drain(gpg.stderr)
            digest, size = hashlib.sha256(), 0
            while chunk := gpg.stdout.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                destination.write(chunk)
            feeder.join()
            reader.join()
            if failure:
                raise BackupError(f"could not read what was to be sealed: {failure[0]}")
            if gpg.wait() != 0:
                raise _gpg_error("encrypt", b"".join(errors))
    return Sealed(size, digest.hexdigest(), sizes[0], plain.hexdigest())


@contextmanager
def opener(private_key: Path, passphrase_file: Path | None = None) -> Iterator[Opener]:
    """An `Opener` with `private_key` imported into a scratch home, removed afterwards."""
    with _home() as home:
        imported = subprocess.run(  # noqa: S603  # nosec B603  # fixed arguments
            [GPG, *_GPG_BASE, "--homedir", home, "--import", str(private_key)],
            capture_output=True,
            check=False,
        )
        if imported.returncode != 0:
            raise _gpg_error(f"import the private key {private_key}", imported.stderr)
        yield Opener(home, passphrase_file)


@dataclass(frozen=True)
class Opener:
    """Decrypts and decompresses sealed files with the private key of its home."""

    home: str
    passphrase_file: Path | None

    def open(self, sealed: IO[bytes], destination: IO[bytes], name: str) -> int:
        """Write the plaintext of the sealed stream `sealed` (called `name` in errors) into
        `destination`; its size."""
        argv = [GPG, *_GPG_BASE, "--homedir", self.home, "--pinentry-mode", "loopback"]
        if self.passphrase_file is not None:
            argv += ["--passphrase-file", str(self.passphrase_file)]
        else:
            argv += ["--passphrase", ""]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        with child([*argv, "--decrypt"], **pipes) as gpg:
            if gpg.stdin is None or gpg.stdout is None:
                raise BackupError("gpg started without pipes")
            feeder = threading.Thread(target=_copy, args=(sealed, gpg.stdin))
            feeder.start()
            reader, errors = drain(gpg.stderr)
            size = 0
            try:
                with zstandard.ZstdDecompressor().stream_reader(gpg.stdout, closefd=False) as plain:
                    while chunk := plain.read(CHUNK):
                        size += len(chunk)
                        destination.write(chunk)
            except zstandard.ZstdError as exc:
                stop(gpg)
                feeder.join()
                reader.join()
                if errors and errors[0]:
                    raise _gpg_error(f"decrypt {name}", errors[0]) from None
                raise BackupError(f"{name} is damaged: {exc}") from None
            feeder.join()
            reader.join()
            if gpg.wait() != 0:
                said = b"".join(errors)
                if b"No secret key" in said:
                    raise BackupError(
                        f"cannot decrypt {name}: the private key given is not the backup key",
                        hint="use the private key whose public key the repository was made with",
                    )
                raise _gpg_error(f"decrypt {name}", said)
        return size


def _copy(source: IO[bytes], sink: IO[bytes]) -> None:
    """Copy `source` into `sink` (a child's stdin), then close `sink`."""
    try:
        while chunk := source.read(CHUNK):
            sink.write(chunk)
    except OSError:
        pass  # the child died: its exit status and words say why
    finally:
        with suppress(OSError):
            sink.close()
