"""OpenAPI generation: every operation documents the shared error responses.

Kept apart from `api` because drf-spectacular reads DRF settings (which name `api`) on import.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse

from garrison.server.api import ErrorSerializer

_ERRORS = {
    400: "The request is malformed or a value breaks a rule.",
    401: "No valid credentials were sent.",
    403: "The caller's role or token scope does not allow this.",
    404: "No such object, or the caller may not see it.",
    405: "The method is not allowed here.",
    406: "The requested response format is not available.",
    409: "The request clashes with the current state.",
    415: "The request body must be JSON.",
    429: "Too many requests; see Retry-After.",
    503: "The audit trail or log store cannot record or serve this now; nothing was changed.",
}


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Documents `BearerTokenAuthentication` as the `bearer` security scheme."""

    target_class = "garrison.server.accounts.api_auth.BearerTokenAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        """HTTP bearer with Garrison's opaque tokens."""
        return {"type": "http", "scheme": "bearer", "bearerFormat": "grs_<id>_<secret>"}


class AutoSchema(SpectacularAutoSchema):
    """Documents the shared error responses on every operation."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for status, text in _ERRORS.items():
            responses.setdefault(
                str(status),
                self._get_response_for_code(  # type: ignore[no-untyped-call]  # untyped upstream
                    OpenApiResponse(ErrorSerializer, description=text),
                    str(status),
                    direction=direction,
                ),
            )
        return responses
