"""Console URLs of Backups."""

from django.urls import path

from garrison.server.backups import views

app_name = "backups"
urlpatterns = [path("backups/", views.page, name="page")]
