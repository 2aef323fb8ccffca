"""Permission-checked reads of the log store for the console and the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from garrison.core.errors import NotFoundError, PermissionDeniedError, UsageError
from garrison.logstore import query
from garrison.logstore.timeparse import iso, parse_time_ns
from garrison.server import trail
from garrison.server.accounts.models import User
from garrison.server.accounts.roles import READ_ALL

MAX_LIMIT = 500


@dataclass(frozen=True)
class Hit:
    """One search result as pages and the API show it."""

    stream: str
    offset: int
    time: str
    event: dict[str, Any]

    @property
    def json(self) -> str:
        """The event as compact JSON, as stored."""
        return msgspec.json.encode(self.event).decode()


def _require_reader(actor: User) -> None:
    if actor.role not in READ_ALL:
        raise PermissionDeniedError("your role may not read the log store")


def streams_visible_to(actor: User) -> list[str]:
    """Streams the actor may search."""
    _require_reader(actor)
    return trail.store().stream_names()


def stream_sizes(actor: User) -> dict[str, int]:
    """Records stored per stream."""
    store = trail.store()
    return {name: store.stream(name).next_offset for name in streams_visible_to(actor)}


def search_logs(
    actor: User,
    *,
    stream: str,
    text: str = "",
    since: str = "",
    until: str = "",
    limit: int = 50,
    before: int | None = None,
) -> list[Hit]:
    """Newest-first search of one stream; `before` pages back from an offset."""
    _require_reader(actor)
    if "\x00" in text or len(text) > 2000:
        raise UsageError("the query is too long or holds NUL bytes")
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit must be 1 to {MAX_LIMIT}")
    store = trail.store()
    if stream not in store.stream_names():
        raise NotFoundError(f"no stream {stream!r}")
    conditions = query.parse(text)
    results = query.search(
        store.stream(stream),
        conditions,
        since_ns=parse_time_ns(since) if since else None,
        until_ns=parse_time_ns(until) if until else None,
        limit=None,
    )
    hits: list[Hit] = []
    for record in results:
        if before is not None and record.offset >= before:
            continue
        hits.append(Hit(stream, record.offset, iso(record.time_ns), record.event()))
        if len(hits) >= limit:
            break
    return hits


def recent(actor: User, stream: str, text: str, *, since: str, limit: int) -> list[dict[str, Any]]:
    """Newest-first events of `stream` since `since` matching `text`, each with its store
    ``time``; none when the stream does not exist yet."""
    try:
        hits = search_logs(actor, stream=stream, text=text, since=since, limit=limit)
    except NotFoundError:
        return []
    return [{"time": h.time, **h.event} for h in hits]
