"""Console shell URLs."""

from django.urls import path

from garrison.server.console import views

app_name = "console"
urlpatterns = [
    path("", views.home, name="home"),
    *[path(f"{name}/", views.section, {"name": name}, name=name) for name in views.SECTION_TEXT],
]
