"""Console URLs of the accounts app."""

from django.urls import path

from garrison.server.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.sign_in, name="login"),
    path("login/verify/", views.verify, name="verify"),
    path("logout/", views.sign_out, name="logout"),
    path("setup/<str:token>/", views.setup, name="setup"),
    path("account/", views.account, name="account"),
    path("account/password/", views.change_password, name="password"),
    path("account/recovery-codes/", views.recovery_codes, name="recovery_codes"),
    path("account/sessions/<str:session_id>/end/", views.end_session, name="end_session"),
    path("account/sessions/end-all/", views.end_all_sessions, name="end_all_sessions"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<str:token_id>/revoke/", views.revoke_token, name="revoke_token"),
    path("users/", views.users, name="users"),
    path("users/<str:username>/", views.user_action, name="user_action"),
]
