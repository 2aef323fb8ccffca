"""Log store benchmark: durable batched appends, verify throughput, search over a time range.

    .venv/bin/python bench/logstore_bench.py [--events 1000000] [--search-events 10000000]

Writes into a temporary directory (removed at the end) and prints a Markdown table that goes
into docs/benchmarks.md. Numbers vary run to run on a shared VM: run it twice.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from garrison.logstore import query, verify
from garrison.logstore.digests import Signer
from garrison.logstore.store import Store

T0 = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp() * 1e9)
encode = msgspec.json.Encoder().encode


def events(n: int, start: int, span_ns: int, seed: int) -> list[tuple[int, bytes]]:
    """`n` web-like events spread evenly over `span_ns` from `start`."""
    rng = random.Random(seed)
    step = span_ns // max(n, 1)
    out = []
    for i in range(n):
        t = start + i * step
        out.append(
            (
                t,
                encode(
                    {
                        "time": dt.datetime.fromtimestamp(t / 1e9, dt.UTC).isoformat(),
                        "host": f"web-{rng.randrange(8)}",
                        "src_ip": f"198.51.{rng.randrange(256)}.{rng.randrange(256)}",
                        "method": "GET",
                        "path": f"/api/items/{rng.randrange(100000)}",
                        "status": rng.choice((200, 200, 200, 301, 404, 500)),
                        "outcome": rng.choice(("success", "success", "failure")),
                        "bytes": rng.randrange(100, 50000),
                    }
                ),
            )
        )
    return out


def bench_append(root: Path, signer: Signer, total: int, batch: int) -> float:
    """Events per second appended durably in batches of `batch` (sealing included)."""
    store = Store(root, signer=signer)
    stream = store.stream("web")
    data = events(total, T0, 3600 * 10**9, seed=batch)
    started = time.perf_counter()
    for i in range(0, total, batch):
        stream.append(data[i : i + batch])
    stream.seal()
    took = time.perf_counter() - started
    store.close()
    return total / took


def bench_verify(root: Path, signer: Signer) -> tuple[float, float, int]:
    """Seconds to verify the store (fast path) and with --deep; records checked."""
    started = time.perf_counter()
    report = verify.verify(root, signer.public)
    fast = time.perf_counter() - started
    if not report.intact:
        raise SystemExit("\n".join(p.line() for p in report.problems))
    started = time.perf_counter()
    report = verify.verify(root, signer.public, deep=True)
    deep = time.perf_counter() - started
    if not report.intact:
        raise SystemExit("deep verify found problems")
    return fast, deep, report.records


def bench_search(root: Path, signer: Signer, total: int) -> dict[str, float]:
    """Search timings over `total` events spread over 30 days."""
    store = Store(root, signer=signer)
    stream = store.stream("web")
    span = 30 * 86400 * 10**9
    chunk = 500_000
    for i in range(0, total, chunk):
        stream.append(
            events(min(chunk, total - i), T0 + span * i // total, span * chunk // total, seed=i)
        )
    stream.seal()
    ip = msgspec.json.decode(stream.read(total // 2, 1)[0].payload)["src_ip"]
    hour = T0 + 15 * 86400 * 10**9
    cases = {
        "1 hour, src_ip=X AND outcome=failure": (
            [query.Condition("src_ip", "=", ip), query.Condition("outcome", "=", "failure")],
            hour,
            hour + 3600 * 10**9,
            None,
        ),
        "1 hour, all events (count)": ([], hour, hour + 3600 * 10**9, None),
        "30 days, newest 100 with status=500": (
            [query.Condition("status", "=", "500")],
            None,
            None,
            100,
        ),
        "1 day, src_ip=X": ([query.Condition("src_ip", "=", ip)], hour, hour + 86400 * 10**9, None),
    }
    out = {}
    for name, (conds, lo, hi, limit) in cases.items():
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            found = sum(
                1 for _ in query.search(stream, conds, since_ns=lo, until_ns=hi, limit=limit)
            )
            runs.append(time.perf_counter() - started)
        out[f"{name} ({found} hits)"] = statistics.median(runs)
    store.close()
    return out


def main() -> None:
    """Run the benchmarks and print a Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--search-events", type=int, default=10_000_000)
    parser.add_argument("--only", default="append,verify,search")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="garrison-bench-"))
    try:
        signer = Signer.load_or_create(work / "key.pem", b"bench")
        print(f"# log store benchmark ({os.cpu_count()} cores, {dt.datetime.now(dt.UTC).date()})\n")
        if "append" in only or "verify" in only:
            print("| batch size | events/s (durable, sealing included) |\n| --- | --- |")
            for batch in (10_000, 1_000, 100):
                total = args.events if batch >= 1000 else min(args.events, 200_000)
                rate = bench_append(work / f"append-{batch}", signer, total, batch)
                print(f"| {batch} | {rate:,.0f} |")
            one = bench_append(work / "append-1", signer, 5_000, 1)
            print(f"| 1 | {one:,.0f} |\n")
        if "verify" in only:
            fast, deep, records = bench_verify(work / "append-10000", signer)
            print(
                f"verify {records:,} records: {fast:.2f} s (hashes vs signed digests), "
                f"{deep:.2f} s with --deep (every record re-hashed)\n"
            )
        if "search" in only:
            print(f"| search over {args.search_events:,} events in 30 days | median of 3 (s) |")
            print("| --- | --- |")
            for name, seconds in bench_search(work / "search", signer, args.search_events).items():
                print(f"| {name} | {seconds:.3f} |")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
