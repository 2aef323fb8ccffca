"""What every API endpoint shares: the error shape, pagination and query-parameter checks."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, pagination, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from garrison.core.errors import GarrisonError, ThrottledError

#: DRF exception class -> machine-readable code.
_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "invalid_request",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


class ErrorBodySerializer(serializers.Serializer[Any]):
    """The error object."""

    code = serializers.CharField(help_text="Machine-readable error code, e.g. `permission_denied`.")
    message = serializers.CharField(help_text="What went wrong and what to do, for people.")
    details = serializers.JSONField(required=False, help_text="Per-field problems, when any.")


class ErrorSerializer(serializers.Serializer[Any]):
    """Every error response of the API has this shape."""

    error = ErrorBodySerializer()


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    """Build an error response in the one shape."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return Response({"error": body}, status=status)


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(v) for v in detail)
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn every error into ``{"error": {"code", "message", "details"?}}``."""
    if isinstance(exc, GarrisonError):
        response = error_response(exc.http_status, exc.code, str(exc))
        if isinstance(exc, ThrottledError):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "invalid_request")
    if isinstance(exc, exceptions.ValidationError):
        response = error_response(exc.status_code, code, _flatten(exc.detail), exc.detail)
    else:
        response = error_response(exc.status_code, code, _flatten(exc.detail))
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response["WWW-Authenticate"] = 'Bearer realm="garrison"'
    return response


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 handler: unknown API paths answer in the error shape, others with the page."""
    if request.path_info.startswith("/api/"):
        body = {"error": {"code": "not_found", "message": "no such API endpoint"}}
        return JsonResponse(body, status=404)
    return defaults.page_not_found(request, exception)


class Pagination(pagination.LimitOffsetPagination):
    """``?limit=&offset=`` with a hard ceiling."""

    default_limit = 50
    max_limit = 500


def query_text(request: Request, name: str, max_length: int = 100) -> str:
    """A free-text query parameter, checked for length and NUL bytes (400 on bad input)."""
    value = request.query_params.get(name, "")
    if len(value) > max_length or "\x00" in value:
        raise exceptions.ValidationError(
            {name: [f"must be at most {max_length} characters without NUL bytes"]}
        )
    return value


def query_choice(request: Request, name: str, choices: list[str]) -> str:
    """A query parameter that must be one of `choices` (or absent)."""
    value = request.query_params.get(name, "")
    if value and value not in choices:
        raise exceptions.ValidationError({name: [f"must be one of {', '.join(choices)}"]})
    return value


def query_int(request: Request, name: str, default: int | None, lowest: int, highest: int) -> Any:
    """An integer query parameter within ``[lowest, highest]`` (400 otherwise)."""
    raw = request.query_params.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lowest - 1
    if not lowest <= value <= highest:
        raise exceptions.ValidationError({name: [f"must be an integer from {lowest} to {highest}"]})
    return value
