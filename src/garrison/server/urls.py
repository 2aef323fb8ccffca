"""Root URLs: console, accounts, API v1 and its schema, static assets, health."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from garrison.server.console import views as console_views

urlpatterns = [
    path("", include("garrison.server.console.urls")),
    path("", include("garrison.server.accounts.urls")),
    path("api/v1/", include("garrison.server.accounts.api_urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("static/<path:name>", console_views.static, name="static"),
    path("healthz", console_views.healthz, name="healthz"),
]
