"""Shared fixtures: people of each role, signed-in console clients, API clients with tokens,
a webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from garrison.server.accounts import views
from garrison.server.accounts.middleware import AUTH_AT
from tests.detect.helpers import Receiver
from tests.factories import Person, make_person, make_token


@pytest.fixture
def admin(db: None) -> Person:
    """An admin."""
    return make_person("admin")


@pytest.fixture
def console(admin: Person) -> Client:
    """A console client signed in as `admin` through the real two-step sign-in."""
    return signed_in_client(admin)


class HttpsClient(Client):
    """A test client whose every request arrives over HTTPS, as with the real server."""

    def generic(self, *args: Any, **kwargs: Any) -> Any:
        """Force `secure=True` on every request."""
        kwargs["secure"] = True
        return super().generic(*args, **kwargs)


def https_client(**environ: Any) -> Client:
    """An `HttpsClient` with extra WSGI environ (REMOTE_ADDR, HTTP_USER_AGENT, ...)."""
    return HttpsClient(**environ)


def signed_in_client(person: Person, **environ: Any) -> Client:
    """A client that went through password + TOTP sign-in."""
    client = https_client(**environ)
    r = client.post("/login/", {"username": person.user.username, "password": person.password})
    assert r.status_code == 302, r.content
    r = client.post("/login/verify/", {"code": person.code()})
    assert r.status_code == 302, r.content
    assert AUTH_AT in client.session
    assert views.PENDING not in client.session
    return client


def api_client(person: Person, *, write: bool = True) -> APIClient:
    """An API client authenticated with a fresh bearer token of `person`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(person.user, write=write)}")
    return client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback HTTP endpoint that records what it is sent (webhooks, notifications)."""
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()
