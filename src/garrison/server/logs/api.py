"""REST endpoints of log search."""

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
from garrison.server.audit.api import PAGE_PARAMETERS, HitPageSerializer, page
from garrison.server.logs import queries


class StreamListSerializer(serializers.Serializer[Any]):
    """The streams in the store."""

    streams = serializers.ListField(child=serializers.CharField())


class StreamListView(APIView):
    """Streams of the log store."""

    read_roles = READ_ALL

    @extend_schema(operation_id="log_streams_list", responses=StreamListSerializer)
    def get(self, request: Request) -> Response:
        """List streams."""
        return Response({"streams": queries.streams_visible_to(api_user(request))})


class LogSearchView(APIView):
    """Search one stream."""

    read_roles = READ_ALL

    @extend_schema(
        operation_id="logs_search",
        parameters=[
            OpenApiParameter("stream", str, description="Stream to search (default audit)."),
            OpenApiParameter(
                "q", str, description="`field=value AND field!=value AND field~text`."
            ),
            *PAGE_PARAMETERS,
        ],
        responses=HitPageSerializer,
    )
    def get(self, request: Request) -> Response:
        """Events of a stream, newest first."""
        limit = query_int(request, "limit", 50, 1, 500)
        hits = queries.search_logs(
            api_user(request),
            stream=query_text(request, "stream", 32) or "audit",
            text=query_text(request, "q", 2000),
            since=query_text(request, "since"),
            until=query_text(request, "until"),
            limit=limit,
            before=query_int(request, "before", None, 0, 2**62),
        )
        return Response(page(hits, limit))
