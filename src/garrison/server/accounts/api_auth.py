"""API authentication by bearer token, for people and machines (the console uses its session)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from garrison.server.accounts.actions import TOKEN_PREFIX, sha256
from garrison.server.accounts.models import APIToken, User

_TOUCH_EVERY = dt.timedelta(minutes=1)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer grs_...``; the token is looked up by its SHA-256."""

    def authenticate(self, request: Request) -> tuple[User, APIToken] | None:
        """Return the token's user, or None when no bearer token was sent."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        value = value.strip()
        if not value.startswith(f"{TOKEN_PREFIX}_"):
            raise exceptions.AuthenticationFailed("malformed API token")
        token = APIToken.objects.select_related("user").filter(token_hash=sha256(value)).first()
        if token is None or not token.is_usable or not token.user.is_active:
            raise exceptions.AuthenticationFailed("the API token is unknown, expired or revoked")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > _TOUCH_EVERY:
            APIToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        """Makes DRF answer 401 (not 403) to unauthenticated calls."""
        return 'Bearer realm="garrison"'
