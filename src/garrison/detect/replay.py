"""Offline detection over log files: parse, evaluate, and hand back the findings.

The files are read in the order given, each line parsed with the file's modification time as
the reference for timestamps without a year, so an old file replays with its own dates. No
server, data directory or store is needed.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path

from garrison.detect.engine import Engine, Finding
from garrison.detect.intel import IPLists
from garrison.detect.rules import RuleSet
from garrison.events.parsers import events_parser, line_parser

CHUNK_BYTES = 4 << 20


def replay(
    rules: RuleSet,
    format_: str,
    files: Iterable[Path],
    *,
    progress: Callable[[int], None] | None = None,
    lists: IPLists | None = None,
) -> tuple[list[Finding], Engine]:
    """Every finding of `rules` over `files` (oldest first), and the engine (for its stats).

    Evidence is ``FILE:LINE``; `progress` is called with the bytes read, every 4 MiB or so.
    """
    engine = Engine(rules, lists=lists)
    starts: list[tuple[int, str]] = []  # (first global line number, file): evidence is a number
    seen = 0
    for path in files:
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        starts.append((seen, str(path)))
        with path.open("rb") as fh:
            if format_ == "cloudtrail":  # a Records line holds many events
                parse_many = events_parser(format_, reference_time=modified)
                for line in fh:
                    seen += 1
                    for event in parse_many(line):
                        engine.process(event, seen)
            else:
                parse = line_parser(format_, reference_time=modified)
                process = engine.process
                for chunk in iter(lambda: fh.readlines(CHUNK_BYTES), []):
                    for line in chunk:
                        seen += 1
                        process(parse(line), seen)
                    if progress is not None:
                        progress(sum(map(len, chunk)))
    findings = engine.all_findings()
    for finding in findings:
        finding.evidence = [_where(starts, n) for n in finding.evidence]
    return findings, engine


def _where(starts: list[tuple[int, str]], number: int) -> str:
    index = bisect.bisect_left(starts, (number, "")) - 1
    first, name = starts[index]
    return f"{name}:{number - first}"
