"""A writer process for the multi-process and crash tests (run as a script, not imported).

It appends batches of events with ids ``start, start+1, ...`` to one stream and, after each
append returns, writes ``id offset`` lines for the batch to the ack file with a single
``os.write``: once a line is there the append was acknowledged (a SIGKILL cannot undo a write
that returned; the ack file needs no fsync because the machine does not lose power).
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

from garrison.logstore.digests import Signer
from garrison.logstore.store import Store, StoreConfig


def main() -> None:
    """Append until `--batches` are done (0: until killed)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--passphrase", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--batches", type=int, default=0)
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--segment-bytes", type=int, default=4096)
    parser.add_argument("--checkpoint-every", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ack", type=Path, required=True)
    args = parser.parse_args()

    rng = random.Random(args.seed)  # noqa: S311  # reproducible batches, not crypto
    signer = Signer.load_or_create(args.key, args.passphrase.encode())
    store = Store(args.root, signer=signer, config=StoreConfig(segment_bytes=args.segment_bytes))
    stream = store.stream(args.stream)
    ack = os.open(args.ack, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    next_id, done = args.start, 0
    while args.batches == 0 or done < args.batches:
        size = rng.randint(1, args.max_batch)
        batch = [
            {"id": next_id + i, "pad": "x" * rng.randint(0, 120), "writer": args.start}
            for i in range(size)
        ]
        offsets = store.append(args.stream, batch)
        lines = "".join(f"{e['id']} {o}\n" for e, o in zip(batch, offsets, strict=True))
        os.write(ack, lines.encode())
        next_id += size
        done += 1
        if args.checkpoint_every and done % args.checkpoint_every == 0:
            stream.checkpoint()
    os.close(ack)
    store.close()


if __name__ == "__main__":
    main()
