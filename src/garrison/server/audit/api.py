"""REST endpoints of the audit trail."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from garrison.server.accounts.api import api_user
from garrison.server.accounts.roles import READ_ALL
from garrison.server.api import query_int, query_text
from garrison.server.audit import queries


class HitSerializer(serializers.Serializer[Any]):
    """One stored event."""

    stream = serializers.CharField()
    offset = serializers.IntegerField()
    time = serializers.CharField()
    event = serializers.JSONField()


class HitPageSerializer(serializers.Serializer[Any]):
    """A page of events, newest first; pass `next_before` as `before` for the next page."""

    results = HitSerializer(many=True)
    next_before = serializers.IntegerField(allow_null=True)


class EventDetailSerializer(HitSerializer):
    """An audit event with its integrity status."""

    integrity = serializers.DictField(child=serializers.CharField())


def page(hits: list[queries.Hit], limit: int) -> dict[str, Any]:
    """The paged response body for `hits`."""
    return {
        "results": [h.__dict__ for h in hits],
        "next_before": hits[-1].offset if len(hits) == limit else None,
    }


PAGE_PARAMETERS = [
    OpenApiParameter("since", str, description="ISO 8601 or 15m / 2h / 7d ago."),
    OpenApiParameter("until", str, description="ISO 8601 or 15m / 2h / 7d ago."),
    OpenApiParameter("limit", int, description="1 to 500 (default 50)."),
    OpenApiParameter("before", int, description="Only events stored before this offset."),
]


class AuditEventListView(APIView):
    """Audit events."""

    read_roles = READ_ALL

    @extend_schema(
        operation_id="audit_events_list",
        parameters=[
            OpenApiParameter("actor", str, description="Actor name."),
            OpenApiParameter("action", str, description="Part of the action name."),
            OpenApiParameter("outcome", str, enum=list(queries.OUTCOMES)),
            *PAGE_PARAMETERS,
        ],
        responses=HitPageSerializer,
    )
    def get(self, request: Request) -> Response:
        """Search audit events, newest first."""
        limit = query_int(request, "limit", 50, 1, 500)
        hits = queries.search_audit(
            api_user(request),
            who=query_text(request, "actor"),
            action=query_text(request, "action"),
            outcome=query_text(request, "outcome"),
            since=query_text(request, "since"),
            until=query_text(request, "until"),
            limit=limit,
            before=query_int(request, "before", None, 0, 2**62),
        )
        return Response(page(hits, limit))


class AuditEventDetailView(APIView):
    """One audit event."""

    read_roles = READ_ALL

    @extend_schema(operation_id="audit_events_retrieve", responses=EventDetailSerializer)
    def get(self, request: Request, event_id: str) -> Response:
        """An audit event with its integrity status (signed, pending or tampered)."""
        hit, integrity = queries.event_with_integrity(api_user(request), event_id)
        return Response({**hit.__dict__, "integrity": integrity.__dict__})
