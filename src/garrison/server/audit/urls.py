"""Console URLs of the audit trail."""

from django.urls import path

from garrison.server.audit import views

app_name = "audit"
urlpatterns = [
    path("audit/", views.events, name="events"),
    path("audit/<str:event_id>/", views.event, name="event"),
]
