"""REST endpoints of the fleet: list, add (join token), revoke, and the agent's join call."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from garrison.server.accounts.api import api_user
from garrison.server.accounts.roles import OPERATE, READ_ALL
from garrison.server.api import Pagination
from garrison.server.fleet import actions, queries
from garrison.server.fleet.models import Host


class HostSerializer(serializers.ModelSerializer[Host]):
    """A host as the API shows it."""

    state = serializers.CharField(read_only=True)

    class Meta:
        model = Host
        fields = (
            "name",
            "zone",
            "state",
            "created_at",
            "joined_at",
            "revoked_at",
            "cert_not_after",
        )
        read_only_fields = fields


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
        return pager.get_paginated_response(HostSerializer(page, many=True).data)

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
        body = {"host": HostSerializer(host).data, "join_token": token}
        return Response(body, status=status.HTTP_201_CREATED)


class HostDetailView(APIView):
    """One host."""

    read_roles = READ_ALL
    write_roles = OPERATE

    @extend_schema(operation_id="hosts_retrieve", responses=HostSerializer)
    def get(self, request: Request, name: str) -> Response:
        """Show a host."""
        return Response(HostSerializer(queries.access_host(api_user(request), name)).data)

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
