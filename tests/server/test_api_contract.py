"""The API contract, walked from its own OpenAPI schema: authentication, roles, scopes, errors.

Every operation drf-spectacular documents is called anonymously, as an auditor, with an admin's
read-scope token and with an admin's write token; every answer at or above 400 must be JSON in
the one error shape. The walk is derived from the schema, so a new endpoint is covered (or fails
the coverage check) without editing this file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.db import connection
from django.http import HttpResponse
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from garrison.events.audit import STREAM, Actor, AuditEvent, new_id, now_iso, outcome_for
from garrison.logstore import query
from garrison.server import trail
from garrison.server.accounts import actions
from garrison.server.accounts.models import APIToken, User
from garrison.server.accounts.sessions import META_USER, SessionStore
from garrison.server.findings.actions import do_add_suppression
from garrison.server.findings.sink import DatabaseSink
from garrison.server.fleet.actions import do_add_host as add_host
from garrison.server.ssh.actions import do_issue
from tests.factories import Person, make_person, make_token, seed_finding

SCHEMA: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
#: The documented error object, checked with the schema's own component.
ERROR_SCHEMA = {"$ref": "#/components/schemas/Error", "components": SCHEMA["components"]}


@dataclass(frozen=True)
class Operation:
    """One documented method on one documented path."""

    method: str
    path: str
    spec: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def is_write(self) -> bool:
        """Whether the method changes state."""
        return self.method in WRITE_METHODS

    @property
    def documented_statuses(self) -> set[int]:
        """Status codes the schema lists for this operation."""
        return {int(code) for code in self.spec["responses"]}

    @property
    def path_parameters(self) -> list[str]:
        """Names of the `{placeholders}` in the path."""
        return re.findall(r"{(\w+)}", self.path)


OPERATIONS = [
    Operation(method, path, spec)
    for path, item in SCHEMA["paths"].items()
    for method, spec in item.items()
    if method in HTTP_METHODS
]
WRITE_OPERATIONS = [op for op in OPERATIONS if op.is_write]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Nothing here tests password hashing; a cheap hasher keeps the walk fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    """Real objects to fill path parameters, and the callers of the walk."""

    admin: Person
    target: Person
    values: dict[str, str]

    def url(self, op: Operation) -> str:
        """The operation's path with every parameter filled; fails if one has no value."""
        missing = [name for name in op.path_parameters if name not in self.values]
        assert not missing, f"{op}: no test object for path parameter(s) {missing}"
        return op.path.format(**self.values)


@pytest.fixture
def world(db: None) -> World:
    """An admin, a developer to act on, a spare token, a console session and an audit event."""
    admin = make_person("admin")
    target = make_person("developer")
    spare, _ = actions.do_create_token(admin.user, owner=admin.user, name="spare", write=False)
    store = SessionStore()
    store[META_USER] = str(target.user.pk)
    store.create()
    session = target.user.sessions.get()
    event_id = new_id()
    trail.trail().record(
        AuditEvent(
            event_id=event_id,
            time=now_iso(),
            actor=Actor(type="system"),
            action="test.seed",
            outcome="success",
            read_only=True,
        )
    )
    host, _ = add_host(admin.user, name="web-1.test", zone="z1", minutes=5)
    DatabaseSink().upsert([seed_finding()])
    suppression = do_add_suppression(
        admin.user, finding_type="Recon:EC2/Portscan", src="", host="", reason="lab", days=1
    )
    public_key = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    certificate = do_issue(
        None,
        "user",
        public_key,
        key_id=target.user.username,
        principals=[target.user.username],
        valid_for=dt.timedelta(hours=1),
    )
    values = {
        "serial": str(certificate.serial),
        "suppression_id": suppression.public_id,
        "finding_id": seed_finding()["id"],
        "name": host.name,
        "event_id": event_id,
        "username": target.user.username,
        "token_id": spare.public_id,
        "session_id": session.public_id,
    }
    return World(admin, target, values)


def bearer(secret: str) -> APIClient:
    """An API client sending `Authorization: Bearer <secret>`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def call(client: APIClient, op: Operation, url: str) -> HttpResponse:
    """Send the operation (empty JSON body for writes); check its error shape and audit event."""
    if op.is_write:
        response = client.generic(op.method.upper(), url, "{}", content_type="application/json")
    else:
        response = client.generic(op.method.upper(), url)
    assert_error_shape(response)
    assert_audited_once(response)
    return response


def assert_audited_once(response: HttpResponse) -> None:
    """Exactly one audit event carries the response's request id, with the right outcome."""
    request_id = response["X-Request-ID"]
    events = [
        r.event()
        for r in query.search(
            trail.store().stream(STREAM),
            [query.Condition("request_id", "=", request_id)],
            limit=None,
        )
    ]
    assert len(events) == 1, (request_id, events)
    assert events[0]["status"] == response.status_code
    assert events[0]["outcome"] == outcome_for(response.status_code)


def assert_error_shape(response: HttpResponse, code: str | None = None) -> dict[str, Any]:
    """An answer at or above 400 is JSON `{"error": {"code", "message", "details"?}}`."""
    if response.status_code < 400:
        return {}
    assert response["Content-Type"].split(";")[0] == "application/json", response.content
    body: dict[str, Any] = response.json()
    jsonschema.validate(body, ERROR_SCHEMA)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}, body
    assert error["code"], body  # strings, per the schema; and never empty
    assert error["message"], body
    if code is not None:
        assert error["code"] == code, body
    return error


def assert_refused(response: HttpResponse, status: int, code: str) -> None:
    """The request was refused with `status` and error `code`."""
    assert response.status_code == status, response.content
    assert_error_shape(response, code)


@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_operation_contract(op: Operation, world: World) -> None:
    """Anonymous gets 401; auditors and read tokens cannot write; admins get documented answers."""
    url = world.url(op)

    anonymous = call(APIClient(), op, url)
    assert_refused(anonymous, 401, "not_authenticated")
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    if op.spec.get("x-garrison-auth") == "join-token":
        # The agent's join call takes a one-time join token, never a user's API token.
        user_token = bearer(make_token(world.admin.user))
        assert_refused(call(user_token, op, url), 401, "not_authenticated")
        return

    auditor = make_person("auditor")
    auditor_client = bearer(make_token(auditor.user, write=False))
    read_token = bearer(make_token(world.admin.user, write=False))
    assert read_token.get("/api/v1/me").status_code == 200  # the token itself works
    if op.is_write:
        assert_refused(call(auditor_client, op, url), 403, "permission_denied")
        assert_refused(call(read_token, op, url), 403, "permission_denied")
    else:
        assert call(read_token, op, url).status_code not in (401, 403)

    admin = call(bearer(make_token(world.admin.user)), op, url)
    assert admin.status_code in op.documented_statuses, (admin.status_code, admin.content)
    assert admin.status_code < 500


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.path_parameters], ids=str)
def test_nul_byte_in_path_is_404(op: Operation, admin: Person) -> None:
    """A NUL byte in a path parameter is 404 `not_found` (PostgreSQL would refuse the query)."""
    url = op.path.format(**dict.fromkeys(op.path_parameters, "a%00b"))
    response = call(bearer(make_token(admin.user)), op, url)
    assert_refused(response, 404, "not_found")


def _api_routes(patterns: list[Any], prefix: str = "") -> set[str]:
    """Every URL pattern under /api/v1/, as an OpenAPI path (`<str:x>` -> `{x}`)."""
    routes: set[str] = set()
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes |= _api_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
            routes.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return routes


def test_walk_covers_every_operation(world: World) -> None:
    """The walk has every documented operation, and the schema has every API route but its own."""
    counted = sum(
        1 for item in SCHEMA["paths"].values() for method in item if method in HTTP_METHODS
    )
    assert counted > 0
    assert len(OPERATIONS) == counted
    assert len({str(op) for op in OPERATIONS}) == counted
    assert {op.path for op in OPERATIONS} | {"/api/v1/schema/"} == _api_routes(
        get_resolver().url_patterns
    )
    for op in OPERATIONS:
        world.url(op)  # every path parameter has a real object behind it
    assert WRITE_OPERATIONS, "no write operation found: the write checks would prove nothing"


# --- the schema endpoint -------------------------------------------------------------------


def test_schema_endpoint_refuses_anonymous(db: None) -> None:
    """/api/v1/schema/ answers an anonymous caller 401 in the JSON error shape (not YAML)."""
    assert_refused(APIClient().get("/api/v1/schema/"), 401, "not_authenticated")


def test_schema_endpoint_serves_a_token(admin: Person) -> None:
    """/api/v1/schema/ serves the same document to any valid token, read scope included."""
    client = bearer(make_token(admin.user, write=False))
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    served = response.json()
    assert served["openapi"].startswith("3.")
    assert set(served["paths"]) == set(SCHEMA["paths"])
    assert client.get("/api/v1/schema/").content.startswith(b"openapi:")  # YAML by default


# --- error shapes ---------------------------------------------------------------------------


def test_unknown_user_is_404(admin: Person) -> None:
    """An unknown user is 404 `not_found` in the error shape."""
    response = bearer(make_token(admin.user)).get("/api/v1/users/nobody")
    assert_refused(response, 404, "not_found")


def test_unknown_api_path_is_404_json(admin: Person) -> None:
    """A path under /api/ that matches no endpoint is 404 in the error shape, not an HTML page."""
    client = bearer(make_token(admin.user))
    for url in ("/api/v1/nope", "/api/v1/users/", "/api/v1/users/a/b/reset-access"):
        assert_refused(client.get(url), 404, "not_found")


def test_validation_error_has_details(admin: Person) -> None:
    """A body that breaks the serializer is 400 `validation_error` with per-field details."""
    response = bearer(make_token(admin.user)).post("/api/v1/users", {}, format="json")
    assert_refused(response, 400, "validation_error")
    details = response.json()["error"]["details"]
    assert {"username", "role"} <= set(details)


def test_malformed_json_is_400(admin: Person) -> None:
    """A body that is not JSON is 400 `invalid_request`."""
    client = bearer(make_token(admin.user))
    response = client.post("/api/v1/users", "{not json", content_type="application/json")
    assert_refused(response, 400, "invalid_request")


@pytest.mark.parametrize("machine", [True, False], ids=["machine", "person"])
def test_taken_username_is_409(admin: Person, machine: bool) -> None:
    """A taken username is 409 `conflict`, and the failed insert leaves the database usable."""
    client = bearer(make_token(admin.user))
    body = {"username": "svc-ci", "role": "operator", "machine": machine}
    assert client.post("/api/v1/users", body, format="json").status_code == 201
    assert_refused(client.post("/api/v1/users", body, format="json"), 409, "conflict")
    # Runs inside the test's transaction: a failed INSERT without its own savepoint would
    # poison it, and this next query would raise TransactionManagementError.
    assert client.get("/api/v1/users", {"q": "svc-ci"}).json()["count"] == 1


def test_wrong_method_is_405(admin: Person) -> None:
    """A method the endpoint lacks is 405 `method_not_allowed` with an Allow header."""
    response = bearer(make_token(admin.user)).put("/api/v1/me", {}, format="json")
    assert_refused(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_form_body_is_415(admin: Person) -> None:
    """A body that is not JSON by media type is 415 `unsupported_media_type`."""
    response = bearer(make_token(admin.user)).post("/api/v1/users", {"username": "x"})
    assert_refused(response, 415, "unsupported_media_type")


# --- query parameters against injection ----------------------------------------------------

INJECTIONS = [
    pytest.param("' OR 1=1 --", id="or-1=1"),
    pytest.param('" OR ""="', id="double-quote-or"),
    pytest.param("admin'; DROP TABLE accounts_user; --", id="drop-table"),
    pytest.param("1; SELECT * FROM accounts_apitoken", id="stacked-select"),
    pytest.param("\x00", id="nul"),
    pytest.param("admin\x00", id="trailing-nul"),
    pytest.param("%", id="like-percent"),
    pytest.param("_", id="like-underscore"),
    pytest.param("%_%", id="like-mixed"),
    pytest.param("\\", id="backslash"),
    pytest.param("*", id="star"),
    pytest.param("ädmîn ☃", id="unicode"),
    pytest.param("x" * 101, id="101-chars"),
    pytest.param("x" * 10_000, id="10k-chars"),
]


@pytest.mark.parametrize("param", ["q", "role"])
@pytest.mark.parametrize("payload", INJECTIONS)
def test_user_search_resists_injection(admin: Person, param: str, payload: str) -> None:
    """Hostile `?q=` / `?role=` gives 200 with literal matches only, or 400; never 500."""
    make_person("operator", display_name="Ops")
    users_before = User.objects.count()
    response = bearer(make_token(admin.user)).get("/api/v1/users", {param: payload})
    assert response.status_code in (200, 400), response.content
    assert_error_shape(response, "validation_error")
    if response.status_code == 200:
        assert param == "q"  # a role outside the enum is never accepted
        for row in response.json()["results"]:
            haystack = f"{row['username']}\n{row['display_name']}".lower()
            assert payload.lower() in haystack, row  # wildcards match literally
    assert "accounts_user" in connection.introspection.table_names()
    assert User.objects.count() == users_before


def test_user_search_finds_literal_matches(admin: Person) -> None:
    """The search still works: `?q=` matches usernames and display names, `?role=` filters."""
    make_person("operator", username="ops-one", display_name="Night shift")
    client = bearer(make_token(admin.user))

    def names(params: dict[str, str]) -> list[str]:
        return [row["username"] for row in client.get("/api/v1/users", params).json()["results"]]

    assert names({"q": "NIGHT"}) == ["ops-one"]
    assert names({"q": "ops-"}) == ["ops-one"]
    assert names({"role": "operator"}) == ["ops-one"]
    assert client.get("/api/v1/users", {"q": "x" * 100}).status_code == 200


# --- tokens ---------------------------------------------------------------------------------


def test_token_secret_is_shown_once_and_stored_hashed(admin: Person) -> None:
    """The secret is in the create response only; the database keeps just its SHA-256."""
    client = bearer(make_token(admin.user))
    created = client.post("/api/v1/tokens", {"name": "ci", "scopes": ["read"]}, format="json")
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    token_id = created.json()["id"]
    assert secret.startswith("grs_")

    for url in ("/api/v1/tokens", "/api/v1/tokens?all=true", f"/api/v1/tokens/{token_id}"):
        response = client.get(url)
        assert response.status_code == 200
        assert secret.encode() not in response.content
        assert b'"secret"' not in response.content

    row = APIToken.objects.get(public_id=token_id)
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = [str(getattr(row, f.attname)) for f in APIToken._meta.concrete_fields]
    secret_part = secret.rsplit("_", 1)[-1]
    assert not any(secret_part in value for value in stored)
    assert bearer(secret).get("/api/v1/me").status_code == 200


def test_revoked_token_is_401(admin: Person) -> None:
    """A token revoked through the API stops working at once."""
    secret = make_token(admin.user)
    client = bearer(secret)
    token = APIToken.objects.get(token_hash=actions.sha256(secret))
    assert client.delete(f"/api/v1/tokens/{token.public_id}").status_code == 204
    assert_refused(client.get("/api/v1/me"), 401, "not_authenticated")


def test_expired_token_is_401(admin: Person) -> None:
    """A token past its expiry is refused."""
    secret = make_token(admin.user)
    APIToken.objects.filter(token_hash=actions.sha256(secret)).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert_refused(bearer(secret).get("/api/v1/me"), 401, "not_authenticated")


@pytest.mark.parametrize("secret", ["grs_unknown", "not-a-garrison-token", "grs_"])
def test_unknown_token_is_401(db: None, secret: str) -> None:
    """A bearer value that is no token is refused with 401 in the error shape."""
    assert_refused(bearer(secret).get("/api/v1/me"), 401, "not_authenticated")


def test_deactivated_users_token_is_401(admin: Person) -> None:
    """Deactivating a user (API) kills their tokens; an inactive owner's live token fails too."""
    dev = make_person("developer")
    secret = make_token(dev.user)
    client = bearer(secret)
    assert client.get("/api/v1/me").status_code == 200

    patch = {"is_active": False}
    admin_client = bearer(make_token(admin.user))
    response = admin_client.patch(f"/api/v1/users/{dev.user.username}", patch, format="json")
    assert response.status_code == 200, response.content
    assert_refused(client.get("/api/v1/me"), 401, "not_authenticated")

    # Even if a token escaped revocation, the inactive owner is checked on every request.
    other = make_person("developer")
    live = make_token(other.user)
    User.objects.filter(pk=other.user.pk).update(is_active=False)
    assert APIToken.objects.get(token_hash=actions.sha256(live)).is_usable
    assert_refused(bearer(live).get("/api/v1/me"), 401, "not_authenticated")


# --- visibility -----------------------------------------------------------------------------


def test_developer_sees_only_themselves(admin: Person) -> None:
    """A developer's user list holds just their own account; others are 404 to them."""
    dev = make_person("developer")
    make_person("operator")
    client = bearer(make_token(dev.user))
    response = client.get("/api/v1/users")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert [row["username"] for row in body["results"]] == [dev.user.username]
    assert client.get("/api/v1/users", {"q": admin.user.username}).json()["count"] == 0
    assert_refused(client.get(f"/api/v1/users/{admin.user.username}"), 404, "not_found")
