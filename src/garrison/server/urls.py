"""Root URLs: console, accounts, API v1 and its schema, static assets, health."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from garrison.server.console import views as console_views

handler404 = "garrison.server.api.not_found"


class SchemaView(SpectacularAPIView):
    """Serves the OpenAPI document (YAML, or JSON by `Accept`); errors come in the JSON shape.

    Defined here, not in `schema`, which DRF imports while drf-spectacular's views load.
    """

    def handle_exception(self, exc: Exception) -> Response:
        """Render errors (e.g. 401) as JSON, not in the negotiated YAML of the document."""
        response: Response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


urlpatterns = [
    path("", include("garrison.server.console.urls")),
    path("", include("garrison.server.accounts.urls")),
    path("api/v1/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/v1/", include("garrison.server.api_urls")),
    path("", include("garrison.server.audit.urls")),
    path("", include("garrison.server.logs.urls")),
    path("", include("garrison.server.fleet.urls")),
    path("", include("garrison.server.findings.urls")),
    path("", include("garrison.server.ssh.urls")),
    path("", include("garrison.server.backups.urls")),
    path("static/<path:name>", console_views.static, name="static"),
    path("healthz", console_views.healthz, name="healthz"),
]
