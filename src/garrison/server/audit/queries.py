"""Reads of the audit trail: filtered search and one event with its integrity status."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from garrison.core.errors import GarrisonError, NotFoundError, UsageError
from garrison.events.audit import STREAM
from garrison.logstore import digests, proofs
from garrison.logstore.segment import SegmentError
from garrison.server import trail
from garrison.server.accounts.models import User
from garrison.server.logs.queries import Hit, search_logs

__all__ = ["OUTCOMES", "Hit", "Integrity", "event_with_integrity", "search_audit"]

OUTCOMES = ("success", "denied", "error")


def _quoted(value: str) -> str:
    if "\x00" in value or len(value) > 200:
        raise UsageError("filter values must be at most 200 characters without NUL bytes")
    return msgspec.json.encode(value).decode()


def search_audit(
    actor: User,
    *,
    who: str = "",
    action: str = "",
    outcome: str = "",
    since: str = "",
    until: str = "",
    limit: int = 50,
    before: int | None = None,
) -> list[Hit]:
    """Audit events newest first, filtered by actor name, action (substring), outcome, time."""
    if outcome and outcome not in OUTCOMES:
        raise UsageError(f"outcome must be one of {', '.join(OUTCOMES)}")
    terms = []
    if who:
        terms.append(f"actor.name={_quoted(who)}")
    if action:
        terms.append(f"action~{_quoted(action)}")
    if outcome:
        terms.append(f"outcome={outcome}")
    if STREAM not in trail.store().stream_names():
        return []
    return search_logs(
        actor,
        stream=STREAM,
        text=" AND ".join(terms),
        since=since,
        until=until,
        limit=limit,
        before=before,
    )


@dataclass(frozen=True)
class Integrity:
    """Whether an event is covered by a signed digest, and whether it still matches."""

    state: str  # signed | pending | tampered
    detail: str


def event_with_integrity(actor: User, event_id: str) -> tuple[Hit, Integrity]:
    """One audit event and its integrity status (checked with an inclusion proof)."""
    if "\x00" in event_id or len(event_id) > 100:
        raise NotFoundError(f"no audit event {event_id!r}")
    hits = search_logs(actor, stream=STREAM, text=f"event_id={_quoted(event_id)}", limit=1)
    if not hits:
        raise NotFoundError(f"no audit event {event_id!r}")
    hit = hits[0]
    stream = trail.store().stream(STREAM)
    try:
        proof = proofs.prove(stream, hit.offset)
    except NotFoundError:
        return hit, Integrity("pending", "recorded durably; the next hourly checkpoint signs it")
    except (GarrisonError, SegmentError, IndexError, OSError) as exc:
        return hit, Integrity("tampered", f"the proof cannot be built: {exc}")
    public = stream.signer.public if stream.signer else None
    if public is None:
        return hit, Integrity("pending", "no signing key available to check")
    result = proofs.check(proof, public)
    if not result.ok:
        return hit, Integrity("tampered", result.reason)
    key = digests.key_id(public)
    return hit, Integrity("signed", f"{result.reason} (key {key})")
