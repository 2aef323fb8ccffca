"""Console URLs of SSH."""

from django.urls import path

from garrison.server.ssh import views

app_name = "ssh"
urlpatterns = [
    path("ssh/", views.page, name="page"),
    path("ssh/<str:serial>/revoke/", views.revoke, name="revoke"),
]
