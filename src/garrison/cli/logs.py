"""`garrison logs`: parse log files, import them into the store, search it.

``import --format jsonl`` keeps each JSON object as is (adding ``class: application_log``
when it has none) and quarantines lines that are not JSON objects, as before. For the text
formats (``sshd``, ``nginx``, ``nft``, ``vpcflow``, ``cloudtrail``) every line is a valid
log line even when no parser knows its shape: such lines go to the target stream as class
``raw`` events with their ``reason``, not to quarantine. Only undecodable input (bytes
that are not UTF-8) is quarantined.
A ``cloudtrail`` line holding ``{"Records": [...]}`` yields one event per record, and a
whole file that is one (pretty-printed) ``Records`` object is read as one document.
``parse`` prints the normalized events as JSON lines and stores nothing.
"""

from __future__ import annotations

import datetime as dt
import sys
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from garrison.cli.common import DataDirOption, audit_cli, load_settings, out
from garrison.core.errors import UsageError
from garrison.core.paths import DataDir
from garrison.events import cloudtrail, parsers, regex_format
from garrison.events.schema import Event
from garrison.events.syslog import as_zone
from garrison.logstore import query
from garrison.logstore.local import open_store
from garrison.logstore.store import Store
from garrison.logstore.timeparse import iso, parse_time_ns

app = typer.Typer(help="Import logs into the store and search them.", no_args_is_help=True)

QUARANTINE = "quarantine"
_decode_json = msgspec.json.Decoder().decode
BATCH = 5000
FORMATS = parsers.FORMATS
_FORMAT_HELP = "Input format: " + ", ".join(FORMATS) + "."
ZoneOption = Annotated[
    str, typer.Option(help="Zone of timestamps that carry none, e.g. UTC or Europe/Zurich.")
]
ReferenceOption = Annotated[
    str | None,
    typer.Option(
        help="Reference time (ISO 8601) that picks the year of timestamps without one "
        "(default now)."
    ),
]


def _options(format_: str, zone: str, reference: str | None) -> tuple[dt.tzinfo, dt.datetime]:
    if format_.startswith(regex_format.PREFIX):
        regex_format.compile_format(format_)  # a bad pattern is an error before any line
    elif format_ not in FORMATS:
        raise UsageError(
            f"unknown format {format_!r}",
            hint=f"use one of {', '.join(FORMATS)}, or regex:PATTERN with named groups",
        )
    try:
        tz = as_zone(zone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise UsageError(f"unknown time zone {zone!r}", hint="e.g. UTC or Europe/Zurich") from None
    moment = dt.datetime.now(dt.UTC)
    if reference is not None:
        moment = dt.datetime.fromtimestamp(parse_time_ns(reference) / 1e9, dt.UTC)
    return tz, moment


def _line_parser(
    format_: str, zone: str, reference: str | None
) -> Callable[[str | bytes], list[Event]]:
    tz, moment = _options(format_, zone, reference)
    return parsers.events_parser(format_, reference_time=moment, zone=tz)


def _document(file: Path, format_: str, zone: str, reference: str | None) -> list[Event] | None:
    """The events of a file that is one pretty-printed CloudTrail document, else None."""
    if format_ != "cloudtrail":
        return None
    with file.open("rb") as fh:
        if not cloudtrail.looks_like_document(fh.readline()):
            return None
    tz, moment = _options(format_, zone, reference)
    return parsers.document_events(format_, file.read_bytes(), reference_time=moment, zone=tz)


def _quarantine_event(path: Path, number: int, line: bytes, reason: str) -> dict[str, Any]:
    return {
        "source": str(path),
        "line_number": number,
        "reason": reason,
        "line": line.decode("utf-8", "replace")[:10_000],
    }


@app.command("parse")
def parse_cmd(
    file: Annotated[Path, typer.Argument(help="File to parse.", exists=True, dir_okay=False)],
    format_: Annotated[str, typer.Option("--format", help=_FORMAT_HELP)] = "sshd",
    zone: ZoneOption = "UTC",
    reference: ReferenceOption = None,
) -> None:
    """Print each line of a file as a normalized event (JSON lines); nothing is stored."""
    parse = _line_parser(format_, zone, reference)
    encode = msgspec.json.Encoder().encode
    write = sys.stdout.buffer.write
    chunk: list[bytes] = []
    document = _document(file, format_, zone, reference)
    if document is not None:
        chunk = [encode(event) for event in document]
    with file.open("rb") as fh:
        for line in fh if document is None else ():
            if not line.strip():
                continue
            chunk.extend(encode(event) for event in parse(line))
            if len(chunk) >= BATCH:
                write(b"\n".join(chunk) + b"\n")
                chunk = []
    if chunk:
        write(b"\n".join(chunk) + b"\n")
    sys.stdout.flush()


def _import_line(
    format_: str,
    parse: Callable[[str | bytes], list[Event]],
    where: tuple[Path, int, bytes],
    bad: list[dict[str, Any]],
) -> list[Event]:
    """The events of one non-blank line; a malformed line is added to `bad` instead."""
    file, number, line = where
    if format_ == "jsonl":
        try:
            event = _decode_json(line)
        except msgspec.DecodeError as exc:
            bad.append(_quarantine_event(file, number, line, f"not JSON: {exc}"))
            return []
        if not isinstance(event, dict):
            bad.append(_quarantine_event(file, number, line, "not a JSON object"))
            return []
        event.setdefault("class", "application_log")
        return [event]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad.append(_quarantine_event(file, number, line, f"not UTF-8: {exc}"))
        return []
    return parse(text)


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="File to import.", exists=True, dir_okay=False)],
    stream: Annotated[str, typer.Option(help="Target stream, e.g. web, ssh, app.")],
    format_: Annotated[str, typer.Option("--format", help=_FORMAT_HELP)] = "jsonl",
    zone: ZoneOption = "UTC",
    reference: ReferenceOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Load a file into a stream; malformed lines go to the `quarantine` stream with a reason."""
    parse = _line_parser(format_, zone, reference)
    settings = load_settings(data_dir)
    store = open_store(settings)
    imported = quarantined = 0
    batch: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=out, transient=True) as progress, file.open("rb") as fh:
            task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
            document = _document(file, format_, zone, reference)
            if document is not None:
                progress.advance(task, file.stat().st_size)
                batch = document
            for number, line in enumerate(fh if document is None else (), start=1):
                progress.advance(task, len(line))
                if line.strip():
                    batch.extend(_import_line(format_, parse, (file, number, line), bad))
                if len(batch) >= BATCH:
                    imported += len(store.append(stream, batch))
                    batch = []
            if batch:
                imported += len(store.append(stream, batch))
            if bad:
                quarantined = len(store.append(QUARANTINE, bad))
    finally:
        store.close()
    audit_cli(
        settings,
        "cli.logs.import",
        resource=stream,
        parameters={
            "file": str(file),
            "format": format_,
            "imported": imported,
            "quarantined": quarantined,
        },
    )
    out.print(f"imported {imported} events into {escape(stream)}")
    if quarantined:
        out.print(
            f"{quarantined} malformed lines kept in stream {QUARANTINE!r} with their reason "
            f"(garrison logs search --stream {QUARANTINE} 'source={escape(str(file))}')"
        )


@app.command("search")
def search_cmd(
    query_text: Annotated[
        str, typer.Argument(metavar="QUERY", help="e.g. 'src_ip=1.2.3.4 AND outcome=failure'")
    ] = "",
    stream: Annotated[str, typer.Option(help="Stream to search.")] = "audit",
    since: Annotated[str | None, typer.Option(help="ISO time or 15m / 2h / 7d ago.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time or 15m / 2h / 7d ago.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many results.")] = 100,
    oldest_first: Annotated[bool, typer.Option(help="Oldest first (default newest).")] = False,
    format_: Annotated[str, typer.Option("--format", help="jsonl or table.")] = "table",
    data_dir: DataDirOption = None,
) -> None:
    """Search a stream; results stream out as they are found."""
    if format_ not in {"jsonl", "table"}:
        raise UsageError(f"unknown format {format_!r}", hint="use jsonl or table")
    conditions = query.parse(query_text)
    settings = load_settings(data_dir)
    store = Store(DataDir(settings.data_path).logstore)
    if stream not in store.stream_names():
        raise UsageError(
            f"no stream {stream!r}",
            hint=f"streams: {', '.join(store.stream_names()) or 'none yet'}",
        )
    results = query.search(
        store.stream(stream),
        conditions,
        since_ns=parse_time_ns(since) if since else None,
        until_ns=parse_time_ns(until) if until else None,
        limit=limit,
        newest_first=not oldest_first,
    )
    if format_ == "jsonl":
        for record in results:
            sys.stdout.write(record.payload.decode() + "\n")
        return
    table = Table("offset", "time", "event")
    for record in results:
        table.add_row(
            str(record.offset), iso(record.time_ns), escape(record.payload.decode()[:200])
        )
    out.print(table)
