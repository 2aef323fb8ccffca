"""REST endpoints of the fleet: list, add (join token), revoke, the agent's join call, a host's
metrics history and the services by zone."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from garrison.server.accounts.api import api_user
from garrison.server.accounts.roles import OPERATE, READ_ALL
from garrison.server.api import Pagination
from garrison.server.fleet import actions, queries


class HostSerializer(serializers.Serializer[Any]):
    """A host as the API shows it, with what the collector saw of it lately."""

    name = serializers.CharField(source="host.name", read_only=True)
    zone = serializers.CharField(source="host.zone", read_only=True)
    state = serializers.CharField(source="host.state", read_only=True)
    created_at = serializers.DateTimeField(source="host.created_at", read_only=True)
    joined_at = serializers.DateTimeField(source="host.joined_at", read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(
        source="host.revoked_at", read_only=True, allow_null=True
    )
    cert_not_after = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="Expiry of the host's current certificate."
    )
    last_seen = serializers.DateTimeField(read_only=True, allow_null=True)
    silent = serializers.BooleanField(
        read_only=True, help_text="Joined, but nothing heard for 5 minutes."
    )
    agent = serializers.CharField(read_only=True, help_text="The agent's version, as it sent it.")
    address = serializers.CharField(
        read_only=True, help_text="The address the host last connected to the collector from."
    )
    events_per_second = serializers.DictField(
        child=serializers.FloatField(), read_only=True, help_text="Per stream, last 5 minutes."
    )


class HostCreateSerializer(serializers.Serializer[Any]):
    """A new host."""

    name = serializers.CharField(max_length=253)
    zone = serializers.CharField(max_length=32)


class HostCreatedSerializer(serializers.Serializer[Any]):
    """The new host and its one-time join token (shown once)."""

    host = HostSerializer()
    join_token = serializers.CharField()


class JoinRequestSerializer(serializers.Serializer[Any]):
    """The host's certificate signing request (PEM), made from a key that never leaves it."""

    csr = serializers.CharField(max_length=16384)


class JoinedSerializer(serializers.Serializer[Any]):
    """The host's first short-lived client certificate and the CA to trust."""

    host = serializers.CharField()
    certificate = serializers.CharField()
    ca = serializers.CharField()


class HostListView(APIView):
    """Hosts of the fleet."""

    read_roles = READ_ALL
    write_roles = OPERATE
    pagination_class = Pagination

    @extend_schema(operation_id="hosts_list", responses=HostSerializer(many=True))
    def get(self, request: Request) -> Response:
        """List hosts."""
        pager = Pagination()
        page = pager.paginate_queryset(queries.hosts_visible_to(api_user(request)), request, self)
        seen = queries.activity_snapshot()
        views = [queries.view_of(host, seen) for host in page or []]
        return pager.get_paginated_response(HostSerializer(views, many=True).data)

    @extend_schema(
        operation_id="hosts_create",
        request=HostCreateSerializer,
        responses={201: HostCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        """Add a host; its join token is in this response only."""
        data = HostCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        host, token = actions.do_add_host(
            api_user(request),
            name=data.validated_data["name"],
            zone=data.validated_data["zone"],
            minutes=settings.GARRISON.setup_link_minutes,
        )
        body = {"host": HostSerializer(queries.view_of(host, {})).data, "join_token": token}
        return Response(body, status=status.HTTP_201_CREATED)


class HostDetailView(APIView):
    """One host."""

    read_roles = READ_ALL
    write_roles = OPERATE

    @extend_schema(operation_id="hosts_retrieve", responses=HostSerializer)
    def get(self, request: Request, name: str) -> Response:
        """Show a host."""
        host = queries.access_host(api_user(request), name)
        return Response(HostSerializer(queries.view_of(host, queries.activity_snapshot())).data)

    @extend_schema(operation_id="hosts_revoke", responses={204: None})
    def delete(self, request: Request, name: str) -> Response:
        """Revoke a host: the collector refuses it from its next request on."""
        actor = api_user(request)
        actions.do_revoke_host(actor, queries.access_host(actor, name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class HostJoinView(APIView):
    """Called once by a new host's agent with its join token (`Authorization: Bearer grj_...`)."""

    authentication_classes: list[type] = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        operation_id="hosts_join",
        request=JoinRequestSerializer,
        responses={201: JoinedSerializer},
        extensions={"x-garrison-auth": "join-token"},
        examples=[OpenApiExample("join", value={"csr": "-----BEGIN CERTIFICATE REQUEST-----..."})],
    )
    def post(self, request: Request) -> Response:
        """Exchange a join token and a CSR for the host's first certificate."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.startswith(f"{actions.JOIN_PREFIX}_"):
            raise exceptions.NotAuthenticated("send the host's join token as a bearer token")
        data = JoinRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        joined = actions.do_join_host(token.strip(), data.validated_data["csr"].encode())
        body = {
            "host": joined.host.name,
            "certificate": joined.certificate_pem,
            "ca": joined.ca_pem,
        }
        return Response(body, status=status.HTTP_201_CREATED)

    def get_authenticate_header(self, request: Request) -> str:
        """Makes a missing join token a 401 (with its scheme), not a 403."""
        return 'Bearer realm="garrison-join"'


class ServiceInstanceSerializer(serializers.Serializer[Any]):
    """One instance of a service, as its agent last reported it."""

    host = serializers.CharField(read_only=True)
    zone = serializers.CharField(read_only=True)
    healthy = serializers.BooleanField(read_only=True)
    checks = serializers.DictField(read_only=True, help_text="Each check: healthy and detail.")
    changed_at = serializers.DateTimeField(read_only=True)
    reported_at = serializers.DateTimeField(read_only=True)


class ServiceSerializer(serializers.Serializer[Any]):
    """A service across the fleet and the zones it is healthy in (claim P1)."""

    name = serializers.CharField(read_only=True)
    zones = serializers.ListField(child=serializers.CharField(), read_only=True)
    healthy_zones = serializers.ListField(child=serializers.CharField(), read_only=True)
    available = serializers.BooleanField(read_only=True, help_text="Healthy in 2 zones or more.")
    instances = ServiceInstanceSerializer(many=True, read_only=True)


class ServiceListView(APIView):
    """Services of the fleet."""

    read_roles = READ_ALL

    @extend_schema(operation_id="services_list", responses=ServiceSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Every service with its instances and healthy zones."""
        return Response(ServiceSerializer(queries.services_view(api_user(request)), many=True).data)


class MetricsSerializer(serializers.Serializer[Any]):
    """A host's metric history over a range."""

    host = serializers.CharField()
    range = serializers.ChoiceField(choices=list(queries.RANGES))
    step_seconds = serializers.IntegerField(help_text="10 (as sent) or 300 (5-minute rollups).")
    series = serializers.DictField(
        child=serializers.ListField(child=serializers.ListField()),
        help_text="Per metric, [time, value] pairs in time order.",
    )


class HostMetricsView(APIView):
    """One host's metrics history."""

    read_roles = READ_ALL

    @extend_schema(
        operation_id="hosts_metrics",
        parameters=[
            OpenApiParameter("range", str, enum=list(queries.RANGES), description="Default hour.")
        ],
        responses=MetricsSerializer,
    )
    def get(self, request: Request, name: str) -> Response:
        """The last hour (10 s points), day or month (5-minute rollups) of a host's metrics."""
        host = queries.access_host(api_user(request), name)
        chosen = request.query_params.get("range", "hour")
        if chosen not in queries.RANGES:
            raise exceptions.ValidationError({"range": [f"one of {', '.join(queries.RANGES)}"]})
        back, step = queries.RANGES[chosen]
        history = queries.metric_history(host.name, timezone.now() - back, step)
        series = {k: [[at.isoformat(), v] for at, v in points] for k, points in history.items()}
        body = {"host": host.name, "range": chosen, "step_seconds": step, "series": series}
        return Response(MetricsSerializer(body).data)
