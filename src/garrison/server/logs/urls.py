"""Console URLs of log search."""

from django.urls import path

from garrison.server.logs import views

app_name = "logs"
urlpatterns = [path("logs/", views.search, name="search")]
