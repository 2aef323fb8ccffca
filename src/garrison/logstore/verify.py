"""Check a store against its signed digests and name every problem by segment and record.

Kinds: ``modified``, ``deleted``, ``reordered``, ``inserted``, ``truncated``, ``missing``,
``uncovered`` (a segment no digest names), ``bad-signature``, ``broken-chain``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from garrison.logstore import digests, frames, merkle, segment
from garrison.logstore.digests import Checkpoint, SegmentRef, SignedDigest
from garrison.logstore.frames import Frame
from garrison.logstore.segment import Sealed, SegmentError
from garrison.logstore.store import LOG_HEADER, STREAM_RE


@dataclass(frozen=True)
class Problem:
    """One integrity problem."""

    stream: str
    file: str
    kind: str
    detail: str
    offset: int | None = None

    def line(self) -> str:
        """One line for the CLI: where, what kind, and what exactly."""
        where = f"{self.stream}/{self.file}" + (
            f" offset {self.offset}" if self.offset is not None else ""
        )
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class Report:
    """What `verify` checked and found."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    streams: int = 0
    segments: int = 0
    records: int = 0
    digests: int = 0

    @property
    def intact(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def _ranges(offsets: Iterable[int]) -> str:
    values = sorted(offsets)
    parts: list[str] = []
    start = prev = values[0]
    for v in values[1:]:
        if v != prev + 1:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = v
        prev = v
    parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(parts)


def _offset_problems(
    stream: str, file: str, seen: Sequence[int], first: int, count: int
) -> list[Problem]:
    """Compare the offsets found in a file with the run `first .. first+count-1` expected."""
    problems: list[Problem] = []
    expected = range(first, first + count)
    counts: dict[int, int] = {}
    previous = None
    for off in seen:
        counts[off] = counts.get(off, 0) + 1
        if previous is not None and off < previous and counts[off] == 1 and off in expected:
            problems.append(
                Problem(stream, file, "reordered", f"record {off} comes after {previous}", off)
            )
        previous = off
    dupes = [o for o, n in counts.items() if n > 1]
    extra = [o for o in counts if o not in expected]
    missing = [o for o in expected if o not in counts]
    if dupes:
        problems.append(
            Problem(stream, file, "inserted", f"records appear twice: {_ranges(dupes)}", dupes[0])
        )
    if extra:
        problems.append(
            Problem(
                stream,
                file,
                "inserted",
                f"records that were never written: {_ranges(extra)}",
                extra[0],
            )
        )
    if missing:
        problems.append(
            Problem(stream, file, "deleted", f"records gone: {_ranges(missing)}", missing[0])
        )
    return problems


def _damage_problem(
    stream: str, file: str, found: list[Frame], damage: frames.Damage, span: range
) -> tuple[Problem, range]:
    """A damaged frame: the records from it to `end` cannot be read (none is assumed deleted)."""
    start = found[-1].offset + 1 if found else span.start
    lost = range(start, max(start + 1, span.stop))
    problem = Problem(
        stream, file, "modified", f"records {_ranges(lost)} are unreadable ({damage.reason})", start
    )
    return problem, lost


def analyse_sealed(stream: str, path: Path, ref: SegmentRef) -> list[Problem]:
    """Explain why a sealed segment no longer matches its digest."""
    try:
        sealed = Sealed.open(path)
    except SegmentError as exc:
        kind = "truncated" if path.stat().st_size < 64 or "end marker" in str(exc) else "modified"
        return [Problem(stream, path.name, kind, f"segment index is unreadable ({exc})")]
    problems: list[Problem] = []
    seen: list[int] = []
    rewritten: list[str] = []
    for bi, meta in enumerate(sealed.footer.blocks):
        try:
            raw = sealed.read_block(bi)
        except SegmentError:
            problems.append(
                Problem(
                    stream,
                    path.name,
                    "modified",
                    f"block {bi} (records {meta.first}-{meta.first + meta.count - 1}) is corrupt",
                    meta.first,
                )
            )
            seen.extend(range(meta.first, meta.first + meta.count))
            continue
        found, damage = frames.scan(raw)
        seen.extend(f.offset for f in found)
        if damage is not None:
            span = range(meta.first, meta.first + meta.count)
            problem, lost = _damage_problem(stream, path.name, found, damage, span)
            problems.append(problem)
            seen.extend(lost)
        if damage is None and segment.block_root(found).hex() != meta.root:
            rewritten.append(f"{meta.first}-{meta.first + meta.count - 1}")
    problems += _offset_problems(stream, path.name, seen, ref.first, ref.count)
    if not problems and rewritten:
        problems.append(
            Problem(
                stream,
                path.name,
                "modified",
                f"records rewritten with valid checksums in {', '.join(rewritten)}",
                ref.first,
            )
        )
    if not problems:
        roots = [bytes.fromhex(b.root) for b in sealed.footer.blocks]
        if merkle.root(roots).hex() != ref.merkle_root:
            problems.append(
                Problem(
                    stream,
                    path.name,
                    "modified",
                    "segment index rewritten: Merkle root differs from the signed one",
                )
            )
        else:
            problems.append(
                Problem(stream, path.name, "modified", "file bytes changed (records intact)")
            )
    return problems


def _check_checkpoint(stream: str, directory: Path, cp: Checkpoint, report: Report) -> None:
    path = directory / cp.file
    if not path.exists():
        report.problems.append(
            Problem(
                stream,
                cp.file,
                "deleted",
                f"active log with {cp.count} signed records is gone",
                cp.first,
            )
        )
        return
    raw = path.read_bytes()
    found, damage = frames.scan(raw, LOG_HEADER.size)
    signed = found[: cp.count]
    if (
        merkle.root([merkle.leaf_hash(f.body) for f in signed]).hex() == cp.merkle_root
        and len(signed) == cp.count
    ):
        report.records += len(found)
        if len(found) > cp.count:
            unsigned = len(found) - cp.count
            report.notes.append(
                f"{stream}: {unsigned} records after the last checkpoint are not yet signed"
            )
        return
    end = cp.first + cp.count
    # The signed region runs up to the last record that carries a signed offset: anything in it
    # is judged (a forged record there counts whatever its offset); records after it are the
    # unsigned appends since the checkpoint.
    signed_at = [i for i, f in enumerate(found) if cp.first <= f.offset < end]
    region = found[: signed_at[-1] + 1] if signed_at else []
    seen = [f.offset for f in region]
    intact_prefix = seen == list(range(cp.first, cp.first + len(seen)))
    file_ends_there = len(region) == len(found)
    if damage is None and len(seen) < cp.count and intact_prefix and file_ends_there:
        report.problems.append(
            Problem(
                stream,
                cp.file,
                "truncated",
                f"{cp.count} records were signed, {len(seen)} remain",
                cp.first + len(seen),
            )
        )
        return
    problems: list[Problem] = []
    if damage is not None:
        problem, lost = _damage_problem(stream, cp.file, found, damage, range(cp.first, end))
        problems.append(problem)
        seen.extend(lost)
    problems += _offset_problems(stream, cp.file, seen, cp.first, cp.count)
    if not problems:
        problems.append(
            Problem(
                stream,
                cp.file,
                "modified",
                "records rewritten with valid checksums since the last checkpoint",
                cp.first,
            )
        )
    report.problems += problems


def _read_chain(directory: Path, public: Ed25519PublicKey, report: Report) -> list[SignedDigest]:
    """Load a stream's digests, checking signatures, sequence and chaining."""
    stream, kid = directory.name, digests.key_id(public)
    chain: list[SignedDigest] = []
    for i, path in enumerate(digests.list_files(directory / "digests")):
        name = f"digests/{path.name}"
        try:
            signed = digests.read(path)
        except Exception as exc:  # any parse failure is tampering or damage
            report.problems.append(
                Problem(stream, name, "modified", f"digest unreadable ({type(exc).__name__})")
            )
            continue
        report.digests += 1
        d = signed.digest
        problems = []
        if not digests.check_signature(signed, public) or d.key_id != kid:
            problems.append(("bad-signature", f"digest {d.seq} is not signed by key {kid}"))
        if d.stream != stream or path.name != digests.digest_name(d.seq):
            problems.append(("modified", "digest names another stream or sequence"))
        if d.seq != i:
            problems.append(("missing", f"digest {i} is missing (found {d.seq})"))
        if d.previous_signature != (chain[-1].signature if chain else ""):
            problems.append(("broken-chain", f"digest {d.seq} does not follow digest {d.seq - 1}"))
        report.problems += [Problem(stream, name, kind, text) for kind, text in problems]
        chain.append(signed)
    return chain


def _check_anchor(
    stream: str, chain: list[SignedDigest], anchor: SignedDigest, report: Report
) -> None:
    """An exported digest pins history: it must still be in the chain, unchanged."""
    name = digests.digest_name(anchor.digest.seq)
    match = [s for s in chain if s.digest.seq == anchor.digest.seq]
    if not match:
        report.problems.append(
            Problem(stream, name, "deleted", "the digest pinned by the anchor is gone")
        )
    elif match[0].signature != anchor.signature:
        report.problems.append(
            Problem(stream, name, "broken-chain", "history differs from the anchor")
        )


def _check_sealed(
    directory: Path,
    named: dict[str, SegmentRef],
    expired: set[str],
    report: Report,
    *,
    deep: bool,
    since_ns: int | None,
) -> None:
    """Every sealed file must be named by a digest and match it; every named file must exist."""
    stream = directory.name
    on_disk = {p.name: p for p in directory.glob("*.seg")}
    for name, path in sorted(on_disk.items()):
        ref = named.get(name)
        if name in expired:
            report.problems.append(
                Problem(stream, name, "inserted", "segment was expired by retention but is back")
            )
        elif ref is None:
            report.problems.append(
                Problem(
                    stream,
                    name,
                    "uncovered",
                    "no digest names this segment (added by hand, or sealed just before a crash)",
                )
            )
        elif since_ns is None or ref.max_time_ns >= since_ns:
            report.segments += 1
            if segment.file_sha256(path) != ref.sha256:
                report.problems += analyse_sealed(stream, path, ref)
                continue
            report.records += ref.count
            if deep and _deep_root(path) != ref.merkle_root:
                report.problems.append(
                    Problem(stream, name, "modified", "records do not match the signed Merkle root")
                )
    live = sorted((r for f, r in named.items() if f not in expired), key=lambda r: r.first)
    for ref in live:
        if ref.file not in on_disk:
            span = f"{ref.first}-{ref.first + ref.count - 1}"
            report.problems.append(
                Problem(
                    stream, ref.file, "deleted", f"segment with records {span} is gone", ref.first
                )
            )
    # Gaps are looked for among every segment ever signed: one expired by retention (possibly
    # between newer ones, for back-dated events) leaves no unsigned hole.
    signed = sorted(named.values(), key=lambda r: r.first)
    for a, b in itertools.pairwise(signed):
        if b.first > a.first + a.count:
            gap = f"{a.first + a.count}-{b.first - 1}"
            report.problems.append(
                Problem(
                    stream, b.file, "missing", f"records {gap} were never signed", a.first + a.count
                )
            )


def _deep_root(path: Path) -> str:
    sealed = Sealed.open(path)
    roots = []
    for i in range(len(sealed.footer.blocks)):
        raw = sealed.read_block(i)
        idx, _ = frames.index(raw)
        roots.append(merkle.root(frames.leaf_hashes(raw, idx)))
    return merkle.root(roots).hex()


def _check_active(
    directory: Path, chain: list[SignedDigest], named: dict[str, SegmentRef], report: Report
) -> None:
    """Every checkpoint must still hold: in its segment once sealed, else in the active log.

    The active log must be the one that follows the signed segments; any other log is extra.
    """
    stream = directory.name
    by_first = {ref.first: ref for ref in named.values()}
    checkpoints = [s.digest.checkpoint for s in chain if s.digest.checkpoint is not None]
    current = None
    for cp in checkpoints:
        ref = by_first.get(cp.first)
        if ref is None:
            current = cp
            continue
        path = directory / ref.file
        if not path.exists():
            continue  # reported as a deleted segment
        try:
            ok = ref.count >= cp.count and Sealed.open(path).prefix_root(cp.count) == cp.merkle_root
        except SegmentError:
            continue  # reported by the segment check
        if not ok:
            report.problems.append(
                Problem(
                    stream,
                    ref.file,
                    "modified",
                    f"the {cp.count} records signed at a checkpoint before sealing were altered",
                    cp.first,
                )
            )
    expected_first = max((r.first + r.count for r in named.values()), default=0)
    expected_first = max([expected_first, *[s.digest.sealed_through + 1 for s in chain[-1:]]])
    for path in sorted(directory.glob("*.log")):
        first = segment.first_of(path)
        if first in by_first:
            report.notes.append(f"{stream}: {path.name} is an already sealed log left by a crash")
        elif first != expected_first:
            report.problems.append(
                Problem(stream, path.name, "inserted", "an active log no digest leads to", first)
            )
    if current is not None and current.first not in by_first:
        _check_checkpoint(stream, directory, current, report)
        return
    active = directory / segment.name_for(expected_first, ".log")
    if active.exists():
        count = len(frames.index(active.read_bytes(), LOG_HEADER.size)[0])
        if count:
            report.notes.append(f"{stream}: {count} records in the active log are not yet signed")


def verify_stream(
    directory: Path,
    public: Ed25519PublicKey,
    report: Report,
    *,
    deep: bool = False,
    anchor: SignedDigest | None = None,
    since_ns: int | None = None,
) -> None:
    """Verify one stream directory into `report`."""
    chain = _read_chain(directory, public, report)
    if anchor is not None and anchor.digest.stream == directory.name:
        _check_anchor(directory.name, chain, anchor, report)
    named = {ref.file: ref for signed in chain for ref in signed.digest.segments}
    expired = {ref.file for signed in chain for ref in signed.digest.expired}
    _check_sealed(directory, named, expired, report, deep=deep, since_ns=since_ns)
    _check_active(directory, chain, named, report)
    report.streams += 1


def verify(
    root: Path,
    public: Ed25519PublicKey,
    *,
    streams: Sequence[str] | None = None,
    deep: bool = False,
    anchors: Sequence[SignedDigest] = (),
    since_ns: int | None = None,
    required: Sequence[str] = (),
) -> Report:
    """Verify every stream (or the named ones) of the store at `root`.

    Streams in `required` and those an anchor names must exist: deleting a whole stream
    directory is otherwise indistinguishable from a stream that never was.
    """
    report = Report()
    on_disk = (
        sorted(p.name for p in root.iterdir() if p.is_dir() and STREAM_RE.match(p.name))
        if root.is_dir()
        else []
    )
    expected = {*required, *(a.digest.stream for a in anchors)}
    names = list(streams) if streams else sorted({*on_disk, *expected})
    pins = {a.digest.stream: a for a in anchors}
    for name in names:
        directory = root / name
        if not directory.is_dir():
            report.problems.append(Problem(name, "", "deleted", "stream directory is gone"))
            continue
        verify_stream(
            directory, public, report, deep=deep, anchor=pins.get(name), since_ns=since_ns
        )
    return report
