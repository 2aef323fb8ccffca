"""Console URLs of findings."""

from django.urls import path

from garrison.server.findings import views

app_name = "findings"
urlpatterns = [
    path("findings/", views.findings, name="list"),
    path("findings/suppressions/", views.suppressions, name="suppressions"),
    path(
        "findings/suppressions/<str:suppression_id>/delete/",
        views.remove_suppression,
        name="suppression_remove",
    ),
    path("findings/<str:finding_id>/", views.detail, name="detail"),
    path("findings/<str:finding_id>/status/", views.set_status, name="status"),
]
