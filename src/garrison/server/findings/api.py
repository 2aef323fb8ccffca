"""REST endpoints of findings: list (filtered, paginated) and detail."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from garrison.server.accounts.api import api_user
from garrison.server.accounts.roles import OPERATE, READ_ALL
from garrison.server.api import Pagination, query_choice, query_text
from garrison.server.findings import actions, queries
from garrison.server.findings.models import STATUSES, Finding, Suppression


class FindingSerializer(serializers.ModelSerializer[Finding]):
    """A finding as the API shows it."""

    id = serializers.CharField(source="finding_id", read_only=True)
    severity_label = serializers.CharField(read_only=True)

    class Meta:
        model = Finding
        fields = (
            "id",
            "type",
            "severity",
            "severity_label",
            "title",
            "description",
            "remediation",
            "rule",
            "src",
            "country",
            "asn",
            "user",
            "host",
            "group",
            "first_seen",
            "last_seen",
            "count",
            "evidence",
            "status",
        )
        read_only_fields = fields


class FindingListView(APIView):
    """Findings, most recent activity first."""

    read_roles = READ_ALL
    pagination_class = Pagination

    @extend_schema(
        operation_id="findings_list",
        parameters=[
            OpenApiParameter("severity", str, enum=list(queries.LABELS), description="At least."),
            OpenApiParameter("status", str, enum=list(STATUSES)),
            OpenApiParameter("q", str, description="Text in the type, title or actor."),
        ],
        responses=FindingSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        """List findings."""
        found = queries.filtered(
            api_user(request),
            severity=query_choice(request, "severity", list(queries.LABELS)),
            status=query_choice(request, "status", list(STATUSES)) or "active",
            text=query_text(request, "q"),
        )
        pager = Pagination()
        page = pager.paginate_queryset(found, request, self)
        return pager.get_paginated_response(FindingSerializer(page, many=True).data)


class FindingStatusSerializer(serializers.Serializer[Any]):
    """A finding's new status."""

    status = serializers.ChoiceField(choices=list(STATUSES))


class FindingDetailView(APIView):
    """One finding."""

    read_roles = READ_ALL
    write_roles = OPERATE

    @extend_schema(operation_id="findings_retrieve", responses=FindingSerializer)
    def get(self, request: Request, finding_id: str) -> Response:
        """Show a finding with its evidence (``STREAM:OFFSET`` in the log store)."""
        return Response(
            FindingSerializer(queries.access_finding(api_user(request), finding_id)).data
        )

    @extend_schema(
        operation_id="findings_update",
        request=FindingStatusSerializer,
        responses=FindingSerializer,
    )
    def patch(self, request: Request, finding_id: str) -> Response:
        """Archive a finding (dealt with) or make it active again."""
        actor = api_user(request)
        finding = queries.access_finding(actor, finding_id)  # 404 before the body is read
        data = FindingStatusSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        finding = actions.do_set_status(actor, finding, data.validated_data["status"])
        return Response(FindingSerializer(finding).data)


class SuppressionSerializer(serializers.ModelSerializer[Suppression]):
    """A suppression as the API shows it."""

    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        model = Suppression
        fields = ("id", "type", "src", "host", "reason", "expires_at", "created_by", "created_at")
        read_only_fields = fields


class SuppressionCreateSerializer(serializers.Serializer[Any]):
    """A new suppression: the finding type, optionally a source and a host, why, how long."""

    type = serializers.CharField(max_length=200)
    src = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    host = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    reason = serializers.CharField(max_length=500)
    days = serializers.IntegerField(min_value=1, max_value=actions.MAX_SUPPRESSION_DAYS)


class SuppressionListView(APIView):
    """Suppressions: new findings they cover are stored `suppressed` and not announced."""

    read_roles = READ_ALL
    write_roles = OPERATE
    pagination_class = Pagination

    @extend_schema(operation_id="suppressions_list", responses=SuppressionSerializer(many=True))
    def get(self, request: Request) -> Response:
        """List suppressions (expired ones included, newest first)."""
        pager = Pagination()
        found = queries.suppressions_visible_to(api_user(request))
        page = pager.paginate_queryset(found, request, self)
        return pager.get_paginated_response(SuppressionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="suppressions_create",
        request=SuppressionCreateSerializer,
        responses={201: SuppressionSerializer},
    )
    def post(self, request: Request) -> Response:
        """Suppress new findings of a type (from a source, on a host) for some days."""
        data = SuppressionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        created = actions.do_add_suppression(
            api_user(request),
            finding_type=v["type"],
            src=v["src"],
            host=v["host"],
            reason=v["reason"],
            days=v["days"],
        )
        return Response(SuppressionSerializer(created).data, status=status.HTTP_201_CREATED)


class SuppressionDetailView(APIView):
    """One suppression."""

    read_roles = READ_ALL
    write_roles = OPERATE

    @extend_schema(operation_id="suppressions_delete", responses={204: None})
    def delete(self, request: Request, suppression_id: str) -> Response:
        """End a suppression now."""
        actions.do_remove_suppression(api_user(request), suppression_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
