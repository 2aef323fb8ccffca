"""The one write path for accounts: views, API, CLI and jobs call these `do_<verb>_<noun>`."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from garrison.core.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from garrison.server.accounts import throttle, totp
from garrison.server.accounts.models import (
    APIToken,
    SetupLink,
    TOTPDevice,
    User,
    UserSession,
    public_id,
    username_validator,
)
from garrison.server.accounts.roles import MANAGE_ACCOUNTS, SELF_SERVICE, Role

TOKEN_PREFIX = "grs"  # noqa: S105  # nosec B105  # public prefix: leaked tokens are greppable
TOKEN_DEFAULT_DAYS = 90
TOKEN_MAX_DAYS = 365


def sha256(text: str) -> str:
    """Hex SHA-256 of a high-entropy secret (tokens, links); never used for passwords."""
    return hashlib.sha256(text.encode()).hexdigest()


def _require(actor: User | None, roles: frozenset[Role], what: str) -> None:
    if actor is None or not actor.is_active or actor.role not in roles:
        raise PermissionDeniedError(f"your role may not {what}")


def _check_password(password: str, user: User) -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages)) from None


def _check_username(username: str) -> str:
    username = username.strip().lower()
    try:
        username_validator(username)
    except DjangoValidationError as exc:
        raise ValidationError(f"invalid username {username!r}: {' '.join(exc.messages)}") from None
    return username


def _check_role(role: str) -> Role:
    if role not in Role.values:
        raise ValidationError(f"unknown role {role!r}: use one of {', '.join(Role.values)}")
    return Role(role)


@dataclass(frozen=True)
class Enrolment:
    """What a new person receives once: their TOTP secret and recovery codes."""

    user: User
    totp_secret: str
    recovery_codes: list[str]


def do_create_person(
    actor: User | None,
    *,
    username: str,
    role: str,
    password: str,
    display_name: str = "",
    email: str = "",
) -> Enrolment:
    """Create a person with a password and a confirmed TOTP device (CLI and tests).

    `actor` None means the local operator at the CLI of the data dir's host.
    """
    if actor is not None:
        _require(actor, MANAGE_ACCOUNTS, "create accounts")
    user = User(
        username=_check_username(username),
        role=_check_role(role),
        display_name=display_name,
        email=email,
    )
    _check_password(password, user)
    user.set_password(password)
    user.password_changed_at = timezone.now()
    secret = totp.new_secret()
    try:
        with transaction.atomic():
            user.save()
            TOTPDevice.objects.create(
                user=user, secret_sealed=totp.seal(secret), confirmed_at=timezone.now()
            )
    except IntegrityError:
        raise ConflictError(f"a user named {user.username!r} already exists") from None
    return Enrolment(user, secret, totp.new_recovery_codes(user))


def do_create_machine(actor: User, *, username: str, role: str, display_name: str = "") -> User:
    """Create a machine identity: no password, no TOTP, API tokens only."""
    _require(actor, MANAGE_ACCOUNTS, "create machine identities")
    user = User(
        username=_check_username(username),
        role=_check_role(role),
        display_name=display_name,
        is_machine=True,
    )
    user.set_unusable_password()
    try:
        with transaction.atomic():  # a duplicate must not break the caller's transaction
            user.save()
    except IntegrityError:
        raise ConflictError(f"a user named {user.username!r} already exists") from None
    return user


def do_update_user(
    actor: User,
    user: User,
    *,
    role: str | None = None,
    display_name: str | None = None,
    is_active: bool | None = None,
) -> User:
    """Change a user's role, display name or active flag (admins only)."""
    _require(actor, MANAGE_ACCOUNTS, "change accounts")
    if user.pk == actor.pk and (is_active is False or (role and role != Role.ADMIN)):
        raise ValidationError("you cannot demote or deactivate yourself; ask another admin")
    if role is not None:
        user.role = _check_role(role)
    if display_name is not None:
        user.display_name = display_name
    if is_active is not None:
        user.is_active = is_active
    with transaction.atomic():
        user.save()
        if is_active is False:
            do_end_all_sessions(user)
            APIToken.objects.filter(user=user, revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )
    return user


# --- setup links -------------------------------------------------------------------------


def do_create_setup_link(
    actor: User | None,
    *,
    purpose: SetupLink.Purpose,
    minutes: int,
    role: str = Role.ADMIN,
    user: User | None = None,
) -> str:
    """Create a one-time link and return its secret token (shown once)."""
    if purpose == SetupLink.Purpose.FIRST_ADMIN:
        if User.objects.filter(is_machine=False).exists():
            raise ConflictError("an account already exists; the first-admin link is closed")
        role = Role.ADMIN
    else:
        _require(actor, MANAGE_ACCOUNTS, "invite people or reset access")
    if purpose == SetupLink.Purpose.RESET and (user is None or user.is_machine):
        raise ValidationError("an access reset needs a person")
    token = secrets.token_urlsafe(32)
    SetupLink.objects.create(
        token_hash=sha256(token),
        purpose=purpose,
        role=_check_role(role),
        user=user,
        created_by=actor,
        expires_at=timezone.now() + dt.timedelta(minutes=minutes),
    )
    return token


def do_invite_person(actor: User, *, username: str, role: str, minutes: int) -> tuple[User, str]:
    """Create an account without credentials and a link for its owner to set them."""
    _require(actor, MANAGE_ACCOUNTS, "invite people")
    user = User(username=_check_username(username), role=_check_role(role))
    user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save()
            token = do_create_setup_link(
                actor, purpose=SetupLink.Purpose.INVITE, minutes=minutes, role=role, user=user
            )
    except IntegrityError:
        raise ConflictError(f"a user named {user.username!r} already exists") from None
    return user, token


def open_setup_link(token: str) -> SetupLink:
    """The usable link behind `token`, or NotFoundError saying why not."""
    link = SetupLink.objects.select_related("user").filter(token_hash=sha256(token)).first()
    if link is None or link.used_at is not None or link.expires_at <= timezone.now():
        raise NotFoundError(
            "this link is unknown, already used or expired",
            hint="ask an admin for a new one (or run `garrison admin create` on the server)",
        )
    return link


def do_complete_setup(
    token: str,
    *,
    username: str,
    display_name: str,
    password: str,
    totp_secret: str,
    code: str,
) -> list[str]:
    """Use a setup link: set the password, confirm TOTP; returns new recovery codes."""
    with transaction.atomic():
        link = open_setup_link(token)
        if link.purpose == SetupLink.Purpose.FIRST_ADMIN:
            if User.objects.filter(is_machine=False).exists():
                raise ConflictError("an account already exists; the first-admin link is closed")
            user = User(
                username=_check_username(username), role=Role.ADMIN, display_name=display_name
            )
        else:
            if link.user is None:
                raise ConflictError("this link names no account; ask an admin for a new one")
            user = link.user
            if display_name:
                user.display_name = display_name
        _check_password(password, user)
        if totp.matching_step(totp_secret, code) is None:
            raise ValidationError(
                "the code does not match: check the time on your device and enter the "
                "current 6-digit code"
            )
        claimed = SetupLink.objects.filter(pk=link.pk, used_at__isnull=True).update(
            used_at=timezone.now()
        )
        if claimed != 1:
            raise ConflictError("this link has just been used")
        if link.user is not None:  # older links for the same person stop working too
            SetupLink.objects.filter(user=link.user, used_at__isnull=True).update(
                used_at=timezone.now()
            )
        user.set_password(password)
        user.password_changed_at = timezone.now()
        user.save()
        step = totp.matching_step(totp_secret, code) or 0
        TOTPDevice.objects.update_or_create(
            user=user,
            defaults={
                "secret_sealed": totp.seal(totp_secret),
                "confirmed_at": timezone.now(),
                "last_used_step": step,
            },
        )
        if link.purpose == SetupLink.Purpose.RESET:
            do_end_all_sessions(user)
            throttle.clear_account(user.username)
        return totp.new_recovery_codes(user)


# --- credentials ---------------------------------------------------------------------------


def do_change_password(user: User, *, current: str, new: str) -> None:
    """Change one's own password (the current one is required)."""
    if not user.check_password(current):
        raise ValidationError("the current password is wrong")
    _check_password(new, user)
    user.set_password(new)
    user.password_changed_at = timezone.now()
    user.save(update_fields=["password", "password_changed_at"])


def do_regenerate_recovery_codes(user: User) -> list[str]:
    """Replace one's recovery codes (the old ones stop working)."""
    return totp.new_recovery_codes(user)


def do_create_token(
    actor: User,
    *,
    owner: User,
    name: str,
    write: bool,
    days: int = TOKEN_DEFAULT_DAYS,
) -> tuple[APIToken, str]:
    """Create an API token; returns the row and the secret, which is never stored."""
    if owner.pk == actor.pk:
        _require(actor, SELF_SERVICE | {Role.AUDITOR}, "create API tokens")
    else:
        _require(actor, MANAGE_ACCOUNTS, "create tokens for others")
        if not owner.is_machine:
            raise PermissionDeniedError("tokens for a person are created by that person")
    if not owner.is_active:
        raise ValidationError(f"{owner.username} is deactivated")
    if owner.role == Role.AUDITOR and write:
        raise ValidationError("auditors are read-only: their tokens cannot have the write scope")
    if not 1 <= days <= TOKEN_MAX_DAYS:
        raise ValidationError(f"a token lives 1 to {TOKEN_MAX_DAYS} days, not {days}")
    name = name.strip()
    if not name:
        raise ValidationError("give the token a name that says where it is used")
    pid = public_id("tok")
    secret = f"{TOKEN_PREFIX}_{pid.removeprefix('tok_')}_{secrets.token_urlsafe(32)}"
    token = APIToken.objects.create(
        public_id=pid,
        user=owner,
        name=name[:100],
        token_hash=sha256(secret),
        can_write=write,
        created_by=actor,
        expires_at=timezone.now() + dt.timedelta(days=days),
    )
    return token, secret


def do_revoke_token(actor: User, token: APIToken) -> APIToken:
    """Revoke a token (its owner, or an admin)."""
    if token.user_id != actor.pk:
        _require(actor, MANAGE_ACCOUNTS, "revoke other people's tokens")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def do_end_session(actor: User, session: UserSession) -> None:
    """End one console session (its owner, or an admin)."""
    if session.user_id != actor.pk:
        _require(actor, MANAGE_ACCOUNTS, "end other people's sessions")
    session.delete()


def do_end_all_sessions(user: User, *, keep_key: str | None = None) -> int:
    """End every console session of `user` (except `keep_key`); returns how many."""
    rows = UserSession.objects.filter(user=user)
    if keep_key:
        rows = rows.exclude(session_key=keep_key)
    deleted, _ = rows.delete()
    return deleted


def verify_second_factor(person: User, code: str, ip: str | None) -> None:
    """A fresh TOTP code of `person` for a sensitive step outside the console (an SSH
    certificate, the bastion): each code works once, attempts are throttled like sign-in.
    Run it outside a transaction that a refusal rolls back, so that failures are counted."""
    attempt = throttle.begin(person.username, ip)
    device = TOTPDevice.objects.filter(user=person).first()
    if device is None or not totp.accept_code(device, code):
        raise PermissionDeniedError(
            "wrong or already used TOTP code", hint="wait for the next code and try again"
        )
    attempt.succeeded()
