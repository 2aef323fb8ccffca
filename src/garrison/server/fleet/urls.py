"""Console URLs of the fleet."""

from django.urls import path

from garrison.server.fleet import views

app_name = "fleet"
urlpatterns = [
    path("hosts/", views.hosts, name="hosts"),
    path("hosts/<str:name>/revoke/", views.revoke, name="revoke"),
    path("hosts/<str:name>/", views.host, name="host"),
    path("services/", views.services, name="services"),
]
