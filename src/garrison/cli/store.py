"""`garrison store`: verify integrity, prove a record, export the digest key, run maintenance."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.markup import escape

from garrison.cli.common import (
    DataDirOption,
    audit_cli,
    configure_logging,
    err,
    load_settings,
    out,
)
from garrison.core.errors import NotFoundError, UsageError
from garrison.core.paths import DataDir
from garrison.logstore import digests, proofs, query, verify
from garrison.logstore.local import open_store
from garrison.logstore.timeparse import parse_time_ns

app = typer.Typer(
    help="The log store: integrity, proofs, digests, maintenance.", no_args_is_help=True
)

PublicKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="Digest public key to trust (an exported copy); default: the one in the data dir.",
    ),
]
MAINTAIN_EVERY = 60.0


def _public_key(data: DataDir, path: Path | None) -> Ed25519PublicKey:
    source = path or data.digest_key.with_suffix(".pub")
    try:
        return digests.load_public(source.read_bytes())
    except FileNotFoundError:
        raise NotFoundError(
            f"no digest public key at {source}",
            hint="nothing was ever signed in this data dir, or pass --public-key",
        ) from None
    except ValueError as exc:
        raise UsageError(f"{source} is not an Ed25519 public key: {exc}") from None


@app.command("verify")
def verify_cmd(
    data_dir: DataDirOption = None,
    stream: Annotated[list[str] | None, typer.Option(help="Only this stream (repeatable).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only segments with records after this time.")
    ] = None,
    deep: Annotated[bool, typer.Option(help="Also re-hash every record (slower).")] = False,
    public_key: PublicKeyOption = None,
    anchor: Annotated[
        list[Path] | None,
        typer.Option(help="An exported digest that history must still contain (repeatable)."),
    ] = None,
) -> None:
    """Check every segment and digest; exit 0 when intact, 1 with one line per problem.

    With `digest_export_dir` set, its public key and latest digests are used by default, so a
    store re-signed or cut back on this host is caught.
    """
    settings = load_settings(data_dir)
    data = DataDir(settings.data_path)
    export = Path(settings.digest_export_dir) if settings.digest_export_dir else None
    if public_key is None and export is not None and (export / "digest-public.pem").is_file():
        public_key = export / "digest-public.pem"
    public = _public_key(data, public_key)
    pins = [digests.read(path) for path in anchor or []]
    if export is not None:
        pins += [digests.read(p) for p in sorted(export.glob("*/latest.json"))]
    # Once this data dir has a signing key it has written audit events: their stream must exist.
    required = ["audit"] if data.digest_key.exists() else []
    since_ns = parse_time_ns(since) if since else None
    started = time.perf_counter()
    with out.status("Verifying the log store..."):
        report = verify.verify(
            data.logstore,
            public,
            streams=stream,
            deep=deep,
            anchors=pins,
            since_ns=since_ns,
            required=required,
        )
    for problem in report.problems:
        out.print(escape(problem.line()))
    for note in report.notes:
        err.print(f"note: {escape(note)}")
    took = time.perf_counter() - started
    summary = (
        f"{report.streams} streams, {report.segments} segments, {report.records} records, "
        f"{report.digests} digests checked in {took:.2f}s with key {digests.key_id(public)}"
        + (f" and {len(pins)} anchors" if pins else "")
    )
    if report.intact:
        out.print(f"intact: {summary}")
        return
    out.print(f"TAMPERED: {len(report.problems)} problems; {summary}")
    raise typer.Exit(1)


def _find_event(store_stream: list[str], settings_data: DataDir, event_id: str) -> tuple[str, int]:
    from garrison.logstore.store import Store  # noqa: PLC0415  # read-only, no signer

    store = Store(settings_data.logstore)
    for name in store_stream or store.stream_names():
        for field in ("event_id", "id"):
            hits = query.search(
                store.stream(name), [query.Condition(field, "=", event_id)], limit=1
            )
            for record in hits:
                return name, record.offset
    raise NotFoundError(f"no record with id {event_id!r}", hint="check the id, or pass --stream")


@app.command("prove")
def prove_cmd(
    event_id: Annotated[str, typer.Argument(help="The record's event_id (or id).")],
    data_dir: DataDirOption = None,
    stream: Annotated[list[str] | None, typer.Option(help="Look only in this stream.")] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the proof here.")
    ] = None,
) -> None:
    """Print an inclusion proof that anyone can check with the exported public key."""
    settings = load_settings(data_dir)
    data = DataDir(settings.data_path)
    name, offset = _find_event(stream or [], data, event_id)
    from garrison.logstore.store import Store  # noqa: PLC0415

    proof = proofs.prove(Store(data.logstore).stream(name), offset)
    blob = msgspec.json.format(msgspec.json.encode(proof), indent=2)
    if output:
        output.write_bytes(blob + b"\n")
        out.print(f"proof for {escape(name)} offset {offset} written to {escape(str(output))}")
    else:
        sys.stdout.write(blob.decode() + "\n")


@app.command("check-proof")
def check_proof_cmd(
    proof_file: Annotated[Path, typer.Argument(help="A proof from `garrison store prove`.")],
    public_key: Annotated[Path, typer.Option(help="The exported digest public key.")],
) -> None:
    """Check a proof with the public key alone (no store needed): exit 0 valid, 1 not."""
    try:
        proof = msgspec.json.decode(proof_file.read_bytes(), type=proofs.Proof)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"cannot read proof {proof_file}: {exc}") from None
    result = proofs.check(proof, digests.load_public(public_key.read_bytes()))
    if result.ok:
        out.print(f"valid: {escape(result.reason)}")
        out.print(escape(proof.payload))
        return
    out.print(f"INVALID: {escape(result.reason)}")
    raise typer.Exit(1)


@app.command("export")
def export_cmd(
    to: Annotated[Path, typer.Option(help="Directory outside the store (another disk or host).")],
    data_dir: DataDirOption = None,
) -> None:
    """Copy the digest public key and each stream's latest digest to `to` (the anchors)."""
    settings = load_settings(data_dir)
    data = DataDir(settings.data_path)
    to.mkdir(parents=True, exist_ok=True)
    public = _public_key(data, None)
    (to / "digest-public.pem").write_bytes(digests.public_pem(public))
    from garrison.logstore.store import Store  # noqa: PLC0415

    store = Store(data.logstore)
    for name in store.stream_names():
        latest = store.stream(name).latest_digest()
        if latest is not None:
            (to / f"{name}-latest.json").write_bytes(msgspec.json.encode(latest))
            out.print(f"{escape(name)}: digest {latest.digest.seq}")
    out.print(
        f"public key {digests.key_id(public)} and latest digests exported to {escape(str(to))}"
    )


@app.command("checkpoint")
def checkpoint_cmd(data_dir: DataDirOption = None) -> None:
    """Sign every stream's records now (normally done hourly by `garrison store serve`)."""
    settings = load_settings(data_dir)
    store = open_store(settings)
    try:
        for name in store.stream_names():
            signed = store.stream(name).checkpoint()
            state = f"digest {signed.digest.seq}" if signed else "nothing new"
            out.print(f"{escape(name)}: {state}")
    finally:
        store.close()
    audit_cli(settings, "cli.store.checkpoint")


@app.command("serve")
def serve_cmd(data_dir: DataDirOption = None) -> None:
    """Run store maintenance forever: seal, hourly checkpoints, retention (a `garrison up` role)."""
    settings = load_settings(data_dir)
    configure_logging(settings)
    store = open_store(settings)
    out.print("log store maintenance running")
    try:
        while True:
            for name, files in store.maintain().items():
                audit_cli(
                    settings,
                    "system.store.expire",
                    resource=name,
                    parameters={
                        "segments": files,
                        "retention_days": store.config.retention_for(name),
                    },
                )
            time.sleep(MAINTAIN_EVERY)
    finally:
        store.close()
