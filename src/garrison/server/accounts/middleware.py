"""Request middleware for console sessions: closed by default, absolute timeout, owner metadata."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from garrison.server.accounts.sessions import META_IP, META_UA

AUTH_AT = "garrison_auth_at"


def client_ip(request: HttpRequest) -> str | None:
    """The peer address of the request (Garrison terminates TLS itself; no proxy headers)."""
    addr = request.META.get("REMOTE_ADDR")
    return str(addr) if addr else None


def record_client(request: HttpRequest) -> None:
    """Keep the session's source address and user agent current (shown in the session list)."""
    session = request.session
    ip, ua = client_ip(request), request.headers.get("User-Agent", "")[:200]
    if session.get(META_IP) != ip:
        session[META_IP] = ip
    if session.get(META_UA) != ua:
        session[META_UA] = ua


class SessionPolicyMiddleware:
    """Ends sessions past their absolute lifetime and records source and user agent."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Apply the policy before the view runs."""
        session = request.session
        if request.user.is_authenticated:
            started = float(session.get(AUTH_AT, 0))
            if time.time() - started > settings.SESSION_ABSOLUTE_SECONDS:
                logout(request)
                messages.info(request, "Your session reached its maximum age. Sign in again.")
            else:
                record_client(request)
        return self.get_response(request)


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Every console view needs a signed-in user unless marked `login_not_required`.

    The API (``/api/``) authenticates in DRF, where `RolePermission` closes every endpoint by
    default and answers 401/403 in JSON instead of redirecting.
    """

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        """Skip API paths; apply Django's check everywhere else."""
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
