"""REST endpoints for accounts: the caller, users, machine identities, tokens, sessions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from garrison.server.accounts import actions, queries
from garrison.server.accounts.models import APIToken, SetupLink, User, UserSession
from garrison.server.accounts.roles import MANAGE_ACCOUNTS, SELF_SERVICE, Role
from garrison.server.api import Pagination, query_choice, query_text


def api_user(request: Request) -> User:
    """The authenticated caller of an API request."""
    user = request.user
    if not isinstance(user, User):  # RolePermission admits only signed-in users; belt and braces
        raise exceptions.NotAuthenticated
    return user


def setup_url(token: str) -> str:
    """The absolute console URL of a setup link."""
    path = reverse("accounts:setup", kwargs={"token": token})
    return f"{settings.GARRISON.console_url}{path}"


class UserSerializer(serializers.ModelSerializer[User]):
    """A person or machine identity as the API shows it."""

    has_totp = serializers.BooleanField(read_only=True)
    # Not `format: email` in the schema: the address is optional and then an empty string.
    email = serializers.CharField(read_only=True, help_text="Email address, empty when unset.")

    class Meta:
        model = User
        fields = (
            "username",
            "display_name",
            "email",
            "role",
            "is_machine",
            "is_active",
            "has_totp",
            "created_at",
            "last_login",
        )
        read_only_fields = fields


class UserCreateSerializer(serializers.Serializer[Any]):
    """Invite a person (returns a setup link) or create a machine identity."""

    username = serializers.CharField(max_length=32)
    role = serializers.ChoiceField(choices=Role.choices)
    display_name = serializers.CharField(max_length=100, required=False, default="")
    machine = serializers.BooleanField(
        default=False, help_text="A machine identity: no password or TOTP, API tokens only."
    )


class UserUpdateSerializer(serializers.Serializer[Any]):
    """Fields an admin may change."""

    role = serializers.ChoiceField(choices=Role.choices, required=False)
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


class UserCreatedSerializer(serializers.Serializer[Any]):
    """The new user and, for a person, the one-time setup link to hand over."""

    user = UserSerializer()
    setup_url = serializers.CharField(allow_null=True)


class TokenSerializer(serializers.ModelSerializer[APIToken]):
    """An API token, without its secret."""

    id = serializers.CharField(source="public_id", read_only=True)
    owner = serializers.CharField(source="user.username", read_only=True)
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = APIToken
        fields = (
            "id",
            "name",
            "owner",
            "scopes",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        )
        read_only_fields = fields


class TokenCreateSerializer(serializers.Serializer[Any]):
    """A new token for oneself, or (admins) for a machine identity."""

    name = serializers.CharField(max_length=100)
    scopes = serializers.MultipleChoiceField(choices=["read", "write"], default={"read"})
    days = serializers.IntegerField(
        min_value=1, max_value=actions.TOKEN_MAX_DAYS, default=actions.TOKEN_DEFAULT_DAYS
    )
    owner = serializers.CharField(
        max_length=32, required=False, help_text="A machine identity's username (admins only)."
    )


class TokenCreatedSerializer(TokenSerializer):
    """A new token; `secret` is shown this once and never again."""

    secret = serializers.CharField(read_only=True)

    class Meta(TokenSerializer.Meta):
        fields = (*TokenSerializer.Meta.fields, "secret")  # type: ignore[assignment]  # one more
        read_only_fields = fields  # type: ignore[assignment]  # same as fields


class SessionSerializer(serializers.ModelSerializer[UserSession]):
    """A console session, identified by an opaque id (never the cookie value)."""

    id = serializers.CharField(source="public_id", read_only=True)
    current = serializers.SerializerMethodField()

    class Meta:
        model = UserSession
        fields = ("id", "ip", "user_agent", "created_at", "last_seen_at", "current")
        read_only_fields = fields

    def get_current(self, obj: UserSession) -> bool:
        """Whether this is the session making the request."""
        request = self.context.get("request")
        key = getattr(getattr(request, "session", None), "session_key", None)
        return bool(key) and obj.session_key == key


class MeView(APIView):
    """The caller."""

    @extend_schema(operation_id="me_retrieve", responses=UserSerializer)
    def get(self, request: Request) -> Response:
        """Who am I."""
        return Response(UserSerializer(api_user(request)).data)


class UserListView(APIView):
    """Users and machine identities."""

    pagination_class = Pagination  # tells the schema that lists come paginated
    write_roles = MANAGE_ACCOUNTS

    @extend_schema(
        operation_id="users_list",
        parameters=[
            OpenApiParameter("q", str, description="Search username and display name."),
            OpenApiParameter("role", str, enum=Role.values, description="Only this role."),
        ],
        responses=UserSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        """List users the caller may see."""
        rows = queries.users_visible_to(
            api_user(request),
            search=query_text(request, "q"),
            role=query_choice(request, "role", Role.values),
        )
        pager = Pagination()
        page = pager.paginate_queryset(rows, request, view=self)
        return pager.get_paginated_response(UserSerializer(page, many=True).data)

    @extend_schema(
        operation_id="users_create",
        request=UserCreateSerializer,
        responses={201: UserCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        """Invite a person or create a machine identity."""
        data = UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        link: str | None = None
        if v["machine"]:
            user = actions.do_create_machine(
                api_user(request),
                username=v["username"],
                role=v["role"],
                display_name=v["display_name"],
            )
        else:
            user, token = actions.do_invite_person(
                api_user(request),
                username=v["username"],
                role=v["role"],
                minutes=settings.GARRISON.setup_link_minutes,
            )
            link = setup_url(token)
        body = UserCreatedSerializer({"user": user, "setup_url": link}).data
        return Response(body, status=status.HTTP_201_CREATED)


class UserDetailView(APIView):
    """One user."""

    write_roles = MANAGE_ACCOUNTS

    @extend_schema(operation_id="users_retrieve", responses=UserSerializer)
    def get(self, request: Request, username: str) -> Response:
        """Show a user."""
        return Response(UserSerializer(queries.access_user(api_user(request), username)).data)

    @extend_schema(
        operation_id="users_update", request=UserUpdateSerializer, responses=UserSerializer
    )
    def patch(self, request: Request, username: str) -> Response:
        """Change role, display name or active flag."""
        actor = api_user(request)
        user = queries.access_user(actor, username)
        data = UserUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = actions.do_update_user(actor, user, **data.validated_data)
        return Response(UserSerializer(user).data)


class UserResetAccessView(APIView):
    """Reset a person's password and TOTP through a one-time link."""

    write_roles = MANAGE_ACCOUNTS

    @extend_schema(
        operation_id="users_reset_access",
        request=None,
        responses={201: inline_serializer("ResetLink", {"setup_url": serializers.CharField()})},
    )
    def post(self, request: Request, username: str) -> Response:
        """Create a reset link (the old password and TOTP keep working until it is used)."""
        actor = api_user(request)
        user = queries.access_user(actor, username)
        token = actions.do_create_setup_link(
            actor,
            purpose=SetupLink.Purpose.RESET,
            minutes=settings.GARRISON.setup_link_minutes,
            role=user.role,
            user=user,
        )
        return Response({"setup_url": setup_url(token)}, status=status.HTTP_201_CREATED)


class TokenListView(APIView):
    """API tokens."""

    pagination_class = Pagination  # tells the schema that lists come paginated
    write_roles = SELF_SERVICE

    @extend_schema(
        operation_id="tokens_list",
        parameters=[
            OpenApiParameter("all", bool, description="Every token (admin, operator, auditor).")
        ],
        responses=TokenSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        """List the caller's tokens (or all)."""
        everyone = query_choice(request, "all", ["true", "false"]) == "true"
        rows = queries.tokens_visible_to(api_user(request), everyone=everyone)
        pager = Pagination()
        page = pager.paginate_queryset(rows, request, view=self)
        return pager.get_paginated_response(TokenSerializer(page, many=True).data)

    @extend_schema(
        operation_id="tokens_create",
        request=TokenCreateSerializer,
        responses={201: TokenCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        """Create a token; its secret is in this response only."""
        actor = api_user(request)
        data = TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        owner = queries.access_user(actor, v["owner"]) if v.get("owner") else actor
        token, secret = actions.do_create_token(
            actor, owner=owner, name=v["name"], write="write" in v["scopes"], days=v["days"]
        )
        body = dict(TokenSerializer(token).data, secret=secret)
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    """One API token."""

    write_roles = SELF_SERVICE

    @extend_schema(operation_id="tokens_retrieve", responses=TokenSerializer)
    def get(self, request: Request, token_id: str) -> Response:
        """Show a token (never its secret)."""
        return Response(TokenSerializer(queries.access_token(api_user(request), token_id)).data)

    @extend_schema(operation_id="tokens_revoke", responses={204: None})
    def delete(self, request: Request, token_id: str) -> Response:
        """Revoke a token at once."""
        actor = api_user(request)
        actions.do_revoke_token(actor, queries.access_token(actor, token_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionListView(APIView):
    """The caller's console sessions."""

    pagination_class = Pagination  # tells the schema that lists come paginated
    write_roles = SELF_SERVICE

    @extend_schema(operation_id="sessions_list", responses=SessionSerializer(many=True))
    def get(self, request: Request) -> Response:
        """List the caller's sessions."""
        rows = queries.sessions_of(api_user(request))
        pager = Pagination()
        page = pager.paginate_queryset(rows, request, view=self)
        data = SessionSerializer(page, many=True, context={"request": request}).data
        return pager.get_paginated_response(data)


class SessionDetailView(APIView):
    """One console session."""

    write_roles = SELF_SERVICE

    @extend_schema(operation_id="sessions_end", responses={204: None})
    def delete(self, request: Request, session_id: str) -> Response:
        """End a session: its cookie stops working at once."""
        actor = api_user(request)
        actions.do_end_session(actor, queries.access_session(actor, session_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
