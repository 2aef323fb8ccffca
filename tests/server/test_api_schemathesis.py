"""Property tests of the whole API with schemathesis, driven in-process over WSGI.

The schema is the one drf-spectacular generates (the document /api/v1/schema/ serves). For every
operation schemathesis sends explicit examples, boundary ("coverage") cases and fuzzed requests,
valid and invalid, and checks each answer: never a 5xx, a documented status, a documented content
type, a body matching the documented schema (error shape included) and documented headers, plus
its auth, method and resource-lifecycle checks.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings

from garrison.server.accounts import actions
from garrison.server.accounts.models import USERNAME_RE, APIToken, User, UserSession
from garrison.server.accounts.sessions import META_USER, SessionStore
from tests.factories import Person, make_person

#: Real objects the fixture creates, offered to schemathesis as examples so that the operations
#: on one object reach their success paths too (random ids would only ever find 404).
TARGET = "target-dev"
MACHINE = "svc-bot"
TOKEN_ID = "tok_00000000000000aa"
SESSION_ID = "ses_00000000000000aa"
PATH_EXAMPLES = {"username": TARGET, "token_id": TOKEN_ID, "session_id": SESSION_ID}


def schema_with_hints() -> dict[str, Any]:
    """The generated schema plus examples naming real objects and the documented username rule.

    The hints only steer generation; every response is still validated against the same
    documented responses as the served schema.
    """
    raw = copy.deepcopy(SchemaGenerator().get_schema(request=None, public=True))
    for item in raw["paths"].values():
        for spec in item.values():
            for param in spec.get("parameters", []):
                if param["in"] == "path" and param["name"] in PATH_EXAMPLES:
                    param["example"] = PATH_EXAMPLES[param["name"]]
    bodies = raw["components"]["schemas"]
    # The server accepts only usernames matching USERNAME_RE (after lower-casing); without the
    # pattern almost every generated invitation is a 400 and the 201 answer goes untested.
    bodies["UserCreateRequest"]["properties"]["username"]["pattern"] = USERNAME_RE
    bodies["TokenCreateRequest"]["properties"]["owner"]["example"] = MACHINE
    return raw


APP = get_wsgi_application()
schema = schemathesis.openapi.from_dict(schema_with_hints())
schema.app = APP  # requests (and the re-sent ones of auth and method checks) go in-process

#: What every answer is checked for. Left out on purpose, because they assert rules the schema
#: does not claim: `positive_data_acceptance` (the schema gives types and lengths, not every
#: server rule: NUL bytes, whitespace-only names, auditors' write tokens are refused with 400)
#: and `negative_data_rejection` (DRF coerces 0/1 to booleans and its pagination ignores a
#: malformed `limit`/`offset`). `object_level_authorization` needs two callers; the contract
#: tests cover who may see what.
CHECKS = [
    # the answer itself
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    # re-sent variants: without or with broken credentials, other methods, missing headers
    schemathesis.checks.ignored_auth,
    schemathesis.checks.unsupported_method,
    schemathesis.checks.allow_header_conformance,
    schemathesis.checks.missing_required_header,
    # resource lifecycle across cases
    schemathesis.checks.use_after_free,
    schemathesis.checks.ensure_resource_availability,
]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Nothing here tests password hashing; a cheap hasher keeps the run fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def caller(db: None) -> Iterator[Person]:
    """The admin every generated request is sent as, and the objects the examples name."""
    # The WSGI app runs in this thread on the test's connection and sees its transaction, but
    # Django's handler closes "old" connections after each request, which would end that
    # transaction; Django's own test client disconnects the same handler.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        admin = make_person("admin", username="caller")
        target = make_person("developer", username=TARGET)
        actions.do_create_machine(admin.user, username=MACHINE, role="operator")
        token, _ = actions.do_create_token(target.user, owner=target.user, name="t", write=True)
        APIToken.objects.filter(pk=token.pk).update(public_id=TOKEN_ID)
        store = SessionStore()
        store[META_USER] = str(target.user.pk)
        store.create()
        UserSession.objects.filter(user=target.user).update(public_id=SESSION_ID)
        yield admin
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def fresh_token(user: User) -> dict[str, str]:
    """Headers with a new write token of `user`.

    A token is made per generated case rather than per test: a case may revoke the very token
    it was sent with (DELETE /tokens/{id}), and the next case must not start as a stranger and
    see only 401s. The admin stays usable: the API refuses to let an admin demote or deactivate
    themselves, and the objects other cases change or delete belong to someone else.
    """
    _, secret = actions.do_create_token(user, owner=user, name="schemathesis", write=True)
    return {"Authorization": f"Bearer {secret}"}


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_api_conforms_to_its_schema(case: Any, caller: Person) -> None:
    """Generated requests never get a 5xx, and every answer is what the schema documents."""
    case.call_and_validate(headers=fresh_token(caller.user), checks=CHECKS)
