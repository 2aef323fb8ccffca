"""The audit trail: every console request and API call recorded once, secrets never, fail closed."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from garrison.core.errors import StoreError
from garrison.events.audit import STREAM, AuditTrail
from garrison.logstore import query
from garrison.server import trail
from tests.conftest import api_client, https_client, signed_in_client
from tests.factories import Person, make_person

pytestmark = pytest.mark.django_db


def events_for(request_id: str) -> list[dict[str, Any]]:
    """Audit events with this request id."""
    found = query.search(
        trail.store().stream(STREAM),
        [query.Condition("request_id", "=", request_id)],
        limit=None,
    )
    return [r.event() for r in found]


def all_payloads() -> bytes:
    """Every record of every stream, as stored."""
    store = trail.store()
    return b"\n".join(
        r.payload for name in store.stream_names() for r in store.stream(name).read(0, 10**9)
    )


def test_console_sign_in_is_audited_without_secrets(admin: Person) -> None:
    """Password and TOTP steps are recorded with actor and outcome; the password is not."""
    client = https_client(REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="AuditTest/1")
    r = client.post("/login/", {"username": admin.user.username, "password": admin.password})
    (event,) = events_for(r["X-Request-ID"])
    assert event["action"] == "accounts.login.post"
    assert event["outcome"] == "success"
    assert event["source_ip"] == "192.0.2.10"
    assert event["user_agent"] == "AuditTest/1"
    assert event["request_parameters"] == {"username": admin.user.username, "password": "***"}
    code = admin.code()
    r = client.post("/login/verify/", {"code": code})
    (event,) = events_for(r["X-Request-ID"])
    assert event["actor"] == {"type": "user", "name": admin.user.username, "role": "admin"}
    assert event["request_parameters"] == {"code": "***"}
    payloads = all_payloads()
    assert admin.password.encode() not in payloads
    assert f'"{code}"'.encode() not in payloads


def test_denied_calls_are_audited(db: None) -> None:
    """Anonymous and forbidden API calls are recorded as denied with their error code."""
    r = APIClient().get("/api/v1/users")
    (event,) = events_for(r["X-Request-ID"])
    assert (event["outcome"], event["status"], event["error_code"]) == (
        "denied",
        401,
        "not_authenticated",
    )
    assert event["actor"] == {"type": "anonymous"}
    auditor = make_person("auditor")
    r = api_client(auditor, write=False).post("/api/v1/tokens", {"name": "x"}, format="json")
    (event,) = events_for(r["X-Request-ID"])
    assert event["outcome"] == "denied"
    assert event["actor"]["type"] == "token"
    assert event["actor"]["token_id"].startswith("tok_")
    assert event["action"] == "api.tokens.post"
    assert event["read_only"] is False


def test_token_secret_never_stored(admin: Person) -> None:
    """A token created through the API appears in its response only, never in the store."""
    r = api_client(admin).post("/api/v1/tokens", {"name": "ci", "scopes": ["read"]}, format="json")
    assert r.status_code == 201
    secret = r.json()["secret"]
    (event,) = events_for(r["X-Request-ID"])
    assert event["outcome"] == "success"
    assert secret.encode() not in all_payloads()


def test_audit_failure_fails_the_request(admin: Person, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the event cannot be recorded, the call answers 503 and its write is rolled back."""
    client = api_client(admin)

    def broken(self: AuditTrail, event: object) -> int:
        raise StoreError("disk full")

    monkeypatch.setattr(AuditTrail, "record", broken)
    r = client.post("/api/v1/tokens", {"name": "never"}, format="json")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "audit_unavailable"
    monkeypatch.undo()
    assert not admin.user.tokens.filter(name="never").exists()
    console = signed_in_client(admin)
    monkeypatch.setattr(AuditTrail, "record", broken)
    assert console.get("/users/").status_code == 503


def test_audit_pages_and_integrity(admin: Person) -> None:
    """The Audit page lists events; an event is pending until a checkpoint, then signed."""
    console = signed_in_client(admin)
    r = console.get("/account/")
    request_id = r["X-Request-ID"]
    (event,) = events_for(request_id)
    page = console.get("/audit/", {"actor": admin.user.username})
    assert page.status_code == 200
    assert event["event_id"].encode() in page.content
    detail = console.get(f"/audit/{event['event_id']}/")
    assert b"Integrity: pending" in detail.content
    trail.store().stream(STREAM).checkpoint()
    detail = console.get(f"/audit/{event['event_id']}/")
    assert b"Integrity: signed" in detail.content
    assert console.get("/audit/nope/").status_code == 404


def test_audit_api_filters_and_pages(admin: Person) -> None:
    """The API filters by actor and outcome and pages backwards with `before`."""
    client = api_client(admin)
    for _ in range(3):
        client.get("/api/v1/me")
    r = client.get("/api/v1/audit/events", {"actor": admin.user.username, "limit": 2})
    body = r.json()
    assert r.status_code == 200
    assert len(body["results"]) == 2
    assert all(h["event"]["actor"]["name"] == admin.user.username for h in body["results"])
    older = client.get(
        "/api/v1/audit/events",
        {"actor": admin.user.username, "limit": 2, "before": body["next_before"]},
    ).json()
    assert older["results"][0]["offset"] < body["results"][-1]["offset"]
    assert client.get("/api/v1/audit/events", {"outcome": "maybe"}).status_code == 400


def test_developers_cannot_read_the_trail(db: None) -> None:
    """Only admin, operator and auditor read audit and logs."""
    developer = make_person("developer")
    assert api_client(developer).get("/api/v1/audit/events").status_code == 403
    assert api_client(developer).get("/api/v1/logs/search").status_code == 403
    assert signed_in_client(developer).get("/audit/").status_code == 403


def test_logs_search_page_and_api(admin: Person) -> None:
    """Imported events are searchable in the console and the API with the query language."""
    trail.store().append(
        "web",
        [
            {"time": "2026-11-30T10:00:00Z", "src_ip": "203.0.113.5", "status": 404},
            {"time": "2026-11-30T10:00:01Z", "src_ip": "203.0.113.6", "status": 200},
        ],
    )
    client = api_client(admin)
    r = client.get("/api/v1/logs/search", {"stream": "web", "q": "src_ip=203.0.113.5"})
    assert [h["event"]["status"] for h in r.json()["results"]] == [404]
    assert client.get("/api/v1/logs/search", {"stream": "web", "q": "src_ip"}).status_code == 400
    assert "web" in client.get("/api/v1/logs/streams").json()["streams"]
    page = signed_in_client(admin).get("/logs/", {"stream": "web", "q": "status=404"})
    assert b"203.0.113.5" in page.content
    assert b"203.0.113.6" not in page.content


def test_password_change_and_link_paths_are_masked(admin: Person) -> None:
    """Password fields and setup-link tokens never reach the store, even on odd paths."""
    from garrison.server.accounts import actions  # noqa: PLC0415
    from garrison.server.accounts.models import SetupLink  # noqa: PLC0415

    console = signed_in_client(admin)
    new = "a completely new passphrase 12"
    r = console.post(
        "/account/password/", {"current_password": admin.password, "new_password": new}
    )
    (event,) = events_for(r["X-Request-ID"])
    assert event["request_parameters"] == {"current_password": "***", "new_password": "***"}
    token = actions.do_create_setup_link(
        admin.user,
        purpose=SetupLink.Purpose.INVITE,
        minutes=5,
        role="operator",
        user=make_person("operator").user,
    )
    https_client().get(f"/setup/{token}")  # no trailing slash: an unresolved path
    https_client().get(f"/setup/{token}/")
    payloads = all_payloads()
    assert token.encode() not in payloads
    assert new.encode() not in payloads


def test_revoked_token_is_named_in_its_event(admin: Person) -> None:
    """Public ids in the path (tokens, sessions) are kept as the event's resource."""
    client = api_client(admin)
    created = client.post("/api/v1/tokens", {"name": "old"}, format="json").json()
    r = client.delete(f"/api/v1/tokens/{created['id']}")
    (event,) = events_for(r["X-Request-ID"])
    assert event["resource"] == created["id"]


def test_odd_bodies_and_hosts_are_still_audited(admin: Person) -> None:
    """Unparseable bodies and refused Host headers produce one event each."""
    deep = "[" * 5000 + "]" * 5000
    r = APIClient().generic("POST", "/api/v1/tokens", deep, content_type="application/json")
    (event,) = events_for(r["X-Request-ID"])
    assert event["request_parameters"] == {"_body": "unreadable"}
    r = https_client().get("/login/", HTTP_HOST="evil.example")
    assert r.status_code == 400
    (event,) = events_for(r["X-Request-ID"])
    assert event["status"] == 400


def test_times_out_of_range_are_400(admin: Person) -> None:
    """A span too far back is a clear 400, never a 500."""
    client = api_client(admin)
    assert client.get("/api/v1/audit/events", {"since": "99999999999d"}).status_code == 400
    assert signed_in_client(admin).get("/audit/", {"before": "²"}).status_code == 200
