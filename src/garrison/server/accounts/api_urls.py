"""API URLs of the accounts app (mounted under /api/v1/)."""

from django.urls import path

from garrison.server.accounts import api

urlpatterns = [
    path("me", api.MeView.as_view()),
    path("users", api.UserListView.as_view()),
    path("users/<str:username>", api.UserDetailView.as_view()),
    path("users/<str:username>/reset-access", api.UserResetAccessView.as_view()),
    path("tokens", api.TokenListView.as_view()),
    path("tokens/<str:token_id>", api.TokenDetailView.as_view()),
    path("sessions", api.SessionListView.as_view()),
    path("sessions/<str:session_id>", api.SessionDetailView.as_view()),
]
