"""Log search: the query language, conditions on nested fields, time ranges, order and limits."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.core.errors import UsageError
from garrison.logstore import query
from garrison.logstore.digests import Signer
from garrison.logstore.query import Condition
from garrison.logstore.store import Record, Store, StoreConfig, Stream, event_time_ns
from tests.logstore.helpers import EPOCH, everything, iso

# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("   ", []),
        ("outcome=success", [Condition("outcome", "=", "success")]),
        ("  outcome = success  ", [Condition("outcome", "=", "success")]),
        (
            "src_ip=1.2.3.4 AND outcome!=success AND path~/admin",
            [
                Condition("src_ip", "=", "1.2.3.4"),
                Condition("outcome", "!=", "success"),
                Condition("path", "~", "/admin"),
            ],
        ),
        ("a=1 and b=2 AnD c=3", [Condition(f, "=", v) for f, v in zip("abc", "123", strict=True)]),
        ('path~"/admin panel"', [Condition("path", "~", "/admin panel")]),
        (r'msg="say \"hi\" AND go"', [Condition("msg", "=", 'say "hi" AND go')]),
        ('name=""', [Condition("name", "=", "")]),
        ("user.name=alice", [Condition("user.name", "=", "alice")]),
        ("a.b.c_d!=x-y", [Condition("a.b.c_d", "!=", "x-y")]),
        ("x=AND", [Condition("x", "=", "AND")]),
        ("c==d", [Condition("c", "=", "=d")]),
        ("city=Zürich", [Condition("city", "=", "Zürich")]),
        ('a=b AND c="="', [Condition("a", "=", "b"), Condition("c", "=", "=")]),
    ],
)
def test_parse(text: str, expected: list[Condition]) -> None:
    """Conditions, operators, quoting, AND in any case and dotted fields parse as written."""
    assert query.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("=b", 1),
        ("1a=b", 1),
        ("a", 1),
        ("a=b c=d", 5),
        ("a=b OR c=d", 5),
        ("a=b AND 9x=1", 9),
        ("a=b AND AND c=d", 9),
        ("a=b AND c", 9),
        ('a="unterminated', 1),
        ("a=b ANDc=d", 5),
        ('a="bad \\q escape"', 3),
    ],
)
def test_parse_errors_name_the_column(text: str, column: int) -> None:
    """A malformed query is a UsageError that says at which column reading stopped."""
    with pytest.raises(UsageError) as info:
        query.parse(text)
    assert re.search(rf"\bcolumn {column}\b", str(info.value)), str(info.value)


def test_condition_matching() -> None:
    """= and != compare text exactly, ~ is a case-insensitive substring; missing fields are ''."""
    ev: dict[str, Any] = {"n": 200, "ok": True, "user": {"name": "Alice"}, "none": None}
    assert Condition("n", "=", "200").matches(ev)
    assert Condition("ok", "=", "true").matches(ev)
    assert Condition("user.name", "=", "Alice").matches(ev)
    assert not Condition("user.name", "=", "alice").matches(ev)
    assert Condition("user.name", "~", "LIC").matches(ev)
    assert Condition("user.name", "!=", "Bob").matches(ev)
    assert Condition("missing", "!=", "x").matches(ev)
    assert Condition("missing", "=", "").matches(ev)
    assert Condition("none", "=", "").matches(ev)
    assert Condition("user.name.deeper", "=", "").matches(ev)
    assert not Condition("n.x", "=", "200").matches(ev)


# --- searching ---------------------------------------------------------------------------------

BASE_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
USERS = ["alice", "bob", "carol", "dave", "Eve"]
PATHS = ["/", "/admin", "/admin/users", "/api/v1/logs", "/login"]


def _time_ns(i: int) -> int:
    """Mostly increasing times with microseconds; every 7th event is back-dated by a day."""
    t = BASE_NS + i * 1_000_123_457
    if i % 7 == 3:
        t -= 86400 * 10**9
    return t // 1000 * 1000


def _event(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "time": iso(_time_ns(i)),
        "outcome": "failure" if i % 5 == 0 else "success",
        "status": 200 + (i % 3) * 100,
        "user": {"name": USERS[i % len(USERS)], "tags": {"vip": i % 11 == 0}},
        "path": PATHS[i % len(PATHS)],
        "msg": f'request "{i}" é',
    }


N = 1800


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, signer: Signer) -> Iterator[Stream]:
    """A stream of N events: a two-block segment, small segments, and an active log."""
    root = tmp_path_factory.mktemp("query") / "logstore"
    store = Store(root, signer=signer, config=StoreConfig(segment_bytes=1 << 20))
    store.append("app", [_event(i) for i in range(1500)])
    store.stream("app").seal()
    store.close()
    store = Store(root, signer=signer, config=StoreConfig(segment_bytes=8192))
    for start in range(1500, N, 5):
        store.append("app", [_event(i) for i in range(start, start + 5)])
    stream = store.stream("app")
    assert len(stream.sealed_segments()) >= 4
    assert stream.active_count > 0
    yield stream
    store.close()


def test_stored_times_are_the_event_times(searched: Stream) -> None:
    """Each record's time_ns is exactly its event's ISO time (to the microsecond)."""
    records = everything(searched)
    assert [r.offset for r in records] == list(range(N))
    assert [r.time_ns for r in records] == [_time_ns(i) for i in range(N)]


LOW, HIGH = dt.datetime(1900, 1, 1), dt.datetime(2300, 1, 1)  # noqa: DTZ001  # naive bounds, as hypothesis wants


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(moment=st.datetimes(min_value=LOW, max_value=HIGH))
def test_event_time_is_exact(moment: dt.datetime) -> None:
    """event_time_ns turns any ISO 8601 time into exact nanoseconds (no float rounding)."""
    aware = moment.replace(tzinfo=dt.UTC)
    exact = (aware - EPOCH) // dt.timedelta(microseconds=1) * 1000
    assert event_time_ns({"time": aware.isoformat()}, 0) == exact
    assert event_time_ns({"time": moment.isoformat()}, 0) == exact  # naive means UTC
    shifted = aware.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert event_time_ns({"time": shifted.isoformat()}, 0) == exact


def test_event_without_a_usable_time_gets_the_default() -> None:
    """A missing, non-string or unreadable `time` falls back to the arrival time."""
    for ev in ({}, {"time": 5}, {"time": "yesterday"}, {"time": None}):
        assert event_time_ns(ev, 42) == 42


def _brute(
    records: list[Record],
    conditions: list[Condition],
    since: int | None,
    until: int | None,
    newest_first: bool,
) -> list[int]:
    lo = since if since is not None else -(2**63)
    hi = until if until is not None else 2**63
    hits = [
        r.offset
        for r in records
        if lo <= r.time_ns < hi and all(c.matches(r.event()) for c in conditions)
    ]
    return hits[::-1] if newest_first else hits


QUERIES = [
    "",
    "outcome=failure",
    "outcome!=failure",
    "user.name=alice",
    "user.name=Eve",
    "user.name~e",
    "user.name~E AND outcome=success",
    "path~/ADMIN",
    "path=/admin",
    'path="/admin/users" AND status!=300',
    "status=400",
    "user.tags.vip=true",
    "user.tags.vip=true AND outcome=failure AND status=200",
    'msg="request \\"17\\" é"',
    'msg~"17"',
    'missing=""',
    "missing=x",
    "id=1234",
]


@pytest.mark.parametrize("text", QUERIES)
def test_search_matches_a_brute_force_filter(searched: Stream, text: str) -> None:
    """search() returns exactly the records a plain filter over every record selects."""
    conditions = query.parse(text)
    records = everything(searched)
    for newest_first in (True, False):
        got = [
            r.offset
            for r in query.search(searched, conditions, limit=None, newest_first=newest_first)
        ]
        assert got == _brute(records, conditions, None, None, newest_first)


@settings(derandomize=True, database=None, deadline=None, max_examples=120)
@given(data=st.data())
def test_time_range_returns_exactly_since_until(searched: Stream, data: st.DataObject) -> None:
    """Time pruning of segments and blocks keeps exactly the records with since <= time < until."""
    records = everything(searched)
    times = sorted({r.time_ns for r in records})
    bound = st.one_of(
        st.none(),
        st.sampled_from(times),  # exactly on a record's time
        st.sampled_from(times).map(lambda t: t + 1),
        st.sampled_from(times).map(lambda t: t - 1),
        st.integers(times[0] - 10**12, times[-1] + 10**12),
    )
    since, until = data.draw(bound, label="since"), data.draw(bound, label="until")
    text = data.draw(st.sampled_from(["", "outcome=failure", "user.name~a"]), label="query")
    newest_first = data.draw(st.booleans(), label="newest_first")
    conditions = query.parse(text)
    got = [
        r.offset
        for r in query.search(
            searched,
            conditions,
            since_ns=since,
            until_ns=until,
            limit=None,
            newest_first=newest_first,
        )
    ]
    assert got == _brute(records, conditions, since, until, newest_first)


def test_range_bounds_on_a_record_time(searched: Stream) -> None:
    """A record at exactly `since` is in, one at exactly `until` is out."""
    t = _time_ns(1000)
    (hit,) = query.search(searched, [], since_ns=t, until_ns=t + 1, limit=None)
    assert hit.offset == 1000
    assert list(query.search(searched, [], since_ns=t, until_ns=t, limit=None)) == []
    ids_until = {r.offset for r in query.search(searched, [], until_ns=t, limit=None)}
    assert 1000 not in ids_until
    assert 999 in ids_until


@pytest.mark.parametrize("newest_first", [True, False])
@pytest.mark.parametrize("limit", [1, 2, 7, 100, 1000, N, N + 5])
def test_limit_and_order(searched: Stream, limit: int, newest_first: bool) -> None:
    """`limit` returns the first records in the requested order, newest (highest offset) first."""
    got = [r.offset for r in query.search(searched, [], limit=limit, newest_first=newest_first)]
    everything_in_order = list(range(N - 1, -1, -1)) if newest_first else list(range(N))
    assert got == everything_in_order[:limit]
    failures = [
        r.offset
        for r in query.search(
            searched, query.parse("outcome=failure"), limit=limit, newest_first=newest_first
        )
    ]
    expected = [o for o in everything_in_order if o % 5 == 0][:limit]
    assert failures == expected


def test_limit_zero_returns_nothing(searched: Stream) -> None:
    """limit=0 means no results, not one."""
    assert list(query.search(searched, [], limit=0)) == []


def test_default_limit_and_records(searched: Stream) -> None:
    """Without a limit argument a search stops at 100; records carry stream, offset and event."""
    hits = list(query.search(searched, query.parse("user.name=bob")))
    assert len(hits) == 100
    assert all(h.stream == "app" and h.event()["user"]["name"] == "bob" for h in hits)
    assert hits[0].offset > hits[-1].offset
    assert [h.offset for h in hits] == sorted((h.offset for h in hits), reverse=True)


def test_search_is_streamed(searched: Stream) -> None:
    """search() is a lazy iterator: taking one hit does not read everything first."""
    results = query.search(searched, [], limit=None)
    assert next(results).offset == N - 1
    assert next(results).offset == N - 2
