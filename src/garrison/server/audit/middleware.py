"""`AuditMiddleware`: one audit event per request, allowed or denied, or no request at all.

State-changing requests run in one database transaction that also covers writing their audit
event: if the event cannot be made durable the transaction rolls back and the caller gets 503,
so nothing changes unaudited. Reads are answered only once their event is recorded too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.http.request import RawPostDataException

from garrison.core.errors import GarrisonError
from garrison.core.redact import redact
from garrison.events import audit
from garrison.server import trail
from garrison.server.accounts.middleware import client_ip
from garrison.server.accounts.models import APIToken, User

log = logging.getLogger("garrison.audit")

SKIP_PREFIXES = ("/static/", "/healthz")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_BODY = 64 * 1024


class AuditActorMiddleware:
    """Remembers who was signed in before the view ran (sign-out clears `request.user`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Note the signed-in user, then run the view."""
        user = getattr(request, "user", None)
        if isinstance(user, User) and user.is_authenticated:
            request.audit_user = user  # type: ignore[attr-defined]  # read by AuditMiddleware
        return self.get_response(request)


def _actor(request: HttpRequest) -> audit.Actor:
    user = getattr(request, "user", None)
    if not (isinstance(user, User) and user.is_authenticated):
        user = getattr(request, "audit_user", None)
    if user is None:
        return audit.Actor(type="anonymous")
    token = getattr(request, "auth", None)
    if isinstance(token, APIToken):
        return audit.Actor(
            type="token", name=user.username, token_id=token.public_id, role=user.role
        )
    return audit.Actor(type="user", name=user.username, role=user.role)


def _parameters(request: HttpRequest) -> dict[str, Any]:
    """Query and body parameters; views' `sensitive_post_parameters` are masked first."""
    params: dict[str, Any] = dict(request.GET.items())
    if request.method in SAFE_METHODS:
        return params
    try:
        params.update(_body(request))
    except (RecursionError, ValueError, SuspiciousOperation, MultiPartParserError):
        params["_body"] = "unreadable"
    sensitive = getattr(request, "sensitive_post_parameters", ())
    for key in params if sensitive == "__ALL__" else sensitive:
        if key in params:
            params[key] = "***"
    return params


def _body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        return {k: v for k, v in request.POST.items() if k != "csrfmiddlewaretoken"}
    try:
        body = request.body
    except RawPostDataException:
        return {}
    if not 0 < len(body) <= _MAX_BODY:
        return {"_body": f"{len(body)} bytes"} if body else {}
    data = json.loads(body)
    return data if isinstance(data, dict) else {"_body": data}


def _error_code(response: HttpResponseBase) -> str:
    if response.status_code < 400 or response.streaming:
        return ""
    if response.get("Content-Type", "").startswith("application/json"):
        try:
            return str(json.loads(response.content)["error"]["code"])  # type: ignore[attr-defined]
        except (ValueError, KeyError, TypeError):
            return ""
    return {
        401: "not_authenticated",
        403: "permission_denied",
        404: "not_found",
        429: "throttled",
    }.get(response.status_code, f"http_{response.status_code}")


def _where(request: HttpRequest) -> tuple[str, str]:
    match = request.resolver_match
    method = (request.method or "GET").lower()
    if match is None or not match.url_name:
        return f"unknown.{method}", redact(request.path)[:200]
    namespace = match.namespace or match.app_name or "garrison"
    # Path parameters are public ids and names, except a setup link's token.
    values = [
        "***" if k == "token" else redact(str(v))[:100]
        for k, v in match.kwargs.items()
        if k != "name"
    ]
    return f"{namespace}.{match.url_name}.{method}", "/".join(values)


def _unavailable(request: HttpRequest) -> HttpResponse:
    message = "the audit trail cannot record this request, so it was not carried out; retry later"
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": {"code": "audit_unavailable", "message": message}}, status=503
        )
    return HttpResponse(f"Service unavailable: {message}.", status=503, content_type="text/plain")


class AuditMiddleware:
    """Records every request; fails closed when the trail cannot be written."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Run the request and its audit event as one unit."""
        if request.path.startswith(SKIP_PREFIXES):
            return self.get_response(request)
        request_id = audit.new_id("req")
        try:
            if request.method in SAFE_METHODS:
                response = self.get_response(request)
                self._record(request, response, request_id)
            else:
                with transaction.atomic():
                    response = self.get_response(request)
                    if response.status_code >= 500:
                        transaction.set_rollback(True)
                    self._record(request, response, request_id)
        except (GarrisonError, OSError):
            log.exception("audit event for %s %s not recorded", request.method, request.path)
            return _unavailable(request)
        response["X-Request-ID"] = request_id
        return response

    def _record(self, request: HttpRequest, response: HttpResponseBase, request_id: str) -> None:
        action, resource = _where(request)
        event = audit.AuditEvent(
            event_id=audit.new_id(),
            time=audit.now_iso(),
            actor=_actor(request),
            action=action,
            outcome=audit.outcome_for(response.status_code),
            read_only=request.method in SAFE_METHODS,
            source_ip=client_ip(request) or "",
            user_agent=request.headers.get("User-Agent", "")[:200],
            resource=resource,
            request_parameters=audit.redact_parameters(_parameters(request)),
            request_id=request_id,
            status=response.status_code,
            error_code=_error_code(response),
            category="console" if not request.path.startswith("/api/") else "api_activity",
        )
        trail.trail().record(event)
