"""Permission-checked reads for accounts: `access_<noun>` raises when the caller may not see it."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from garrison.core.errors import NotFoundError
from garrison.server.accounts.models import APIToken, User, UserSession
from garrison.server.accounts.roles import MANAGE_ACCOUNTS, READ_ALL


def users_visible_to(actor: User, *, search: str = "", role: str = "") -> QuerySet[User]:
    """Users the actor may list: everyone for admin/operator/auditor, oneself otherwise."""
    rows = User.objects.all() if actor.role in READ_ALL else User.objects.filter(pk=actor.pk)
    if search:
        rows = rows.filter(Q(username__icontains=search) | Q(display_name__icontains=search))
    if role:
        rows = rows.filter(role=role)
    return rows


def _storable(key: str) -> bool:
    """Whether `key` could name a stored object; PostgreSQL refuses NUL bytes in a query."""
    return "\x00" not in key


def access_user(actor: User, username: str) -> User:
    """One user by name, if the actor may see them."""
    rows = users_visible_to(actor).filter(username=username.lower())
    user = rows.first() if _storable(username) else None
    if user is None:
        raise NotFoundError(f"no user named {username!r}")
    return user


def tokens_visible_to(actor: User, *, everyone: bool = False) -> QuerySet[APIToken]:
    """The actor's own tokens; with `everyone`, all tokens for those who read fleet-wide."""
    rows = APIToken.objects.select_related("user", "created_by")
    if everyone and actor.role in READ_ALL:
        return rows
    return rows.filter(user=actor)


def access_token(actor: User, public_id: str) -> APIToken:
    """One token by public id, if it is the actor's or the actor manages accounts."""
    rows = tokens_visible_to(actor, everyone=actor.role in MANAGE_ACCOUNTS)
    token = rows.filter(public_id=public_id).first() if _storable(public_id) else None
    if token is None:
        raise NotFoundError(f"no token {public_id!r}")
    return token


def sessions_of(user: User) -> QuerySet[UserSession]:
    """A user's console sessions, newest activity first."""
    return UserSession.objects.filter(user=user).order_by("-last_seen_at")


def access_session(actor: User, public_id: str) -> UserSession:
    """One of the actor's sessions by public id (admins: anyone's)."""
    rows = UserSession.objects.all() if actor.role in MANAGE_ACCOUNTS else sessions_of(actor)
    session = rows.filter(public_id=public_id).first() if _storable(public_id) else None
    if session is None:
        raise NotFoundError(f"no session {public_id!r}")
    return session
