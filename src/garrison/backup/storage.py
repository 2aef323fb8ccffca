"""Where a repository's files live: a local or mounted directory, or an S3-compatible bucket.

Both publish a file only when it is complete: the directory writes under a temporary name,
fsyncs, renames and fsyncs the directory; the bucket's object appears when its (multipart)
upload completes, which S3 makes atomic. Keys are ``/``-separated paths inside the repository.

``s3://BUCKET/PREFIX`` uses boto3 with the usual AWS configuration (environment, shared
files, instance roles); ``AWS_ENDPOINT_URL`` points it at another S3-compatible service. An
endpoint in the clear is refused off loopback.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Protocol

from garrison.backup.seal import BackupError
from garrison.core.errors import ConfigError
from garrison.core.files import fsync_dir
from garrison.core.urls import https_or_loopback

TEMPORARY_PREFIX: Final = ".tmp-"


@dataclass(frozen=True)
class Stat:
    """A stored file's size and modification time (seconds since the epoch)."""

    size: int
    mtime: float


class Storage(Protocol):
    """What a repository needs from where it is kept."""

    def describe(self) -> str: ...

    def writer(self, key: str) -> Any: ...  # a context manager giving a binary file

    def reader(self, key: str) -> Any: ...  # a context manager giving a binary file

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def stat(self, key: str) -> Stat | None: ...

    def keys(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def leftovers(self) -> list[str]: ...


@contextmanager
def _said(what: str, path: Path) -> Iterator[None]:
    """An OSError (permissions, a full or absent disk) as a BackupError naming the file."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise BackupError(
            f"cannot {what} {path}: {exc.strerror or exc}",
            hint="the repository must be writable by whoever archives into it (PostgreSQL's "
            "user for archive_command)",
        ) from None


class LocalStorage:
    """A directory (local, or a mounted file system)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    @contextmanager
    def writer(self, key: str, mode: int = 0o640) -> Iterator[IO[bytes]]:
        final = self._path(key)
        temporary = final.with_name(f"{TEMPORARY_PREFIX}{final.name}.{secrets.token_hex(4)}")
        with _said("write", final):
            final.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                with os.fdopen(fd, "wb") as out:
                    yield out
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, final)
                fsync_dir(final.parent)
            finally:
                temporary.unlink(missing_ok=True)

    @contextmanager
    def reader(self, key: str) -> Iterator[IO[bytes]]:
        try:
            with self._path(key).open("rb") as source:
                yield source
        except FileNotFoundError:
            raise BackupError(f"{self._path(key)} is missing") from None

    def put(self, key: str, data: bytes) -> None:
        """A small file: the repository's description, its public key, catalog entries
        (readable by all: nothing in them is secret, and PostgreSQL's user reads them)."""
        with self.writer(key, 0o644) as out:
            out.write(data)

    def get(self, key: str) -> bytes | None:
        try:
            with _said("read", self._path(key)):
                return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def stat(self, key: str) -> Stat | None:
        try:
            with _said("read", self._path(key)):
                found = self._path(key).stat()
        except FileNotFoundError:
            return None
        return Stat(found.st_size, found.st_mtime)

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        with _said("list", base):
            if not base.is_dir():
                return []
            return sorted(
                p.relative_to(self.root).as_posix()
                for p in base.rglob("*")
                if p.is_file() and not p.name.startswith(TEMPORARY_PREFIX)
            )

    def delete(self, key: str) -> None:
        path = self._path(key)
        with _said("delete", path):
            path.unlink(missing_ok=True)
            if path.parent.is_dir():
                fsync_dir(path.parent)
                if path.parent != self.root and not any(path.parent.iterdir()):
                    shutil.rmtree(path.parent, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Temporary files of interrupted writes."""
        with _said("list", self.root):
            return sorted(
                p.relative_to(self.root).as_posix()
                for p in self.root.rglob(f"{TEMPORARY_PREFIX}*")
                if p.is_file()
            )


@contextmanager
def _s3(what: str, where: str) -> Iterator[None]:
    """boto3's and botocore's errors (network, credentials, permissions) as a BackupError."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise BackupError(f"cannot {what} {where}: {exc}") from None


class _Aborting:
    """A pipe's reading end for boto3's upload: when the writer failed, reading it raises,
    so that the multipart upload is aborted instead of completed with what came."""

    def __init__(self, source: IO[bytes], failed: threading.Event) -> None:
        self.source, self.failed = source, failed

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        if not chunk and self.failed.is_set():
            raise BackupError("the writer failed: the upload is abandoned")
        return chunk


class S3Storage:
    """A prefix of an S3-compatible bucket."""

    def __init__(self, bucket: str, prefix: str) -> None:
        import boto3  # noqa: PLC0415  # only S3 repositories need it

        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and not https_or_loopback(endpoint):
            raise ConfigError(
                f"AWS_ENDPOINT_URL {endpoint!r} is in the clear",
                hint="use https://, or http:// only to this machine",
            )
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint or None)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        """A pipe whose bytes are uploaded as they come; the object exists once complete."""
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []
        failed = threading.Event()

        def upload() -> None:
            with os.fdopen(read_fd, "rb") as source:
                try:
                    reading = _Aborting(source, failed)
                    self.client.upload_fileobj(reading, self.bucket, self._key(key))
                except BaseException as exc:  # handed to the writing side
                    failure.append(exc)
                    while source.read(1024 * 1024):
                        pass  # let the writer finish

        uploader = threading.Thread(target=upload)
        uploader.start()
        try:
            with os.fdopen(write_fd, "wb") as sink:
                try:
                    yield sink
                except BaseException:
                    failed.set()  # before the pipe closes: the upload must not complete
                    raise
        finally:
            uploader.join()
        if failure and not failed.is_set():
            raise BackupError(f"could not upload {self.describe()}/{key}: {failure[0]}")

    @contextmanager
    def reader(self, key: str) -> Iterator[IO[bytes]]:
        with _s3("read", f"{self.describe()}/{key}"):
            try:
                found = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except self.client.exceptions.NoSuchKey:
                raise BackupError(f"{self.describe()}/{key} is missing") from None
        body = found["Body"]
        try:
            yield body
        finally:
            body.close()

    def put(self, key: str, data: bytes) -> None:
        with _s3("write", f"{self.describe()}/{key}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes | None:
        with _s3("read", f"{self.describe()}/{key}"):
            try:
                found = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except self.client.exceptions.NoSuchKey:
                return None
            data: bytes = found["Body"].read()
        return data

    def stat(self, key: str) -> Stat | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            found = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise BackupError(f"cannot read {self.describe()}/{key}: {exc}") from None
        return Stat(int(found["ContentLength"]), found["LastModified"].timestamp())

    def keys(self, prefix: str) -> list[str]:
        found = []
        skip = len(self.prefix) + 1 if self.prefix else 0
        with _s3("list", f"{self.describe()}/{prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                found += [item["Key"][skip:] for item in page.get("Contents", [])]
        return sorted(found)

    def delete(self, key: str) -> None:
        with _s3("delete", f"{self.describe()}/{key}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def leftovers(self) -> list[str]:
        """Uploads never completed are invisible in S3: nothing to list."""
        return []


def open_storage(location: str | Path) -> LocalStorage | S3Storage:
    """The storage for ``--repo``: ``s3://BUCKET/PREFIX`` or a directory."""
    text = str(location)
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"{text!r} names no bucket", hint="write s3://BUCKET/PREFIX")
        return S3Storage(bucket, prefix)
    return LocalStorage(Path(text))
