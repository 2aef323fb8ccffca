"""Accounts data: users, TOTP devices, recovery codes, setup links, sign-in failures, tokens."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from garrison.server.accounts.roles import Role

USERNAME_RE = r"^[a-z][a-z0-9_.-]{1,31}$"
username_validator = RegexValidator(
    USERNAME_RE,
    "Use 2-32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter "
    "(usernames become SSH principals and Unix names).",
)


def public_id(prefix: str) -> str:
    """An opaque, URL-safe identifier such as ``tok_3kq9...``."""
    return f"{prefix}_{secrets.token_hex(8)}"


class UserManager(BaseUserManager["User"]):
    """Manager used by Django's auth machinery; Garrison writes go through actions.py."""

    def get_by_natural_key(self, username: str | None) -> User:
        """Usernames are case-insensitive on input and stored lower-case."""
        return self.get(username=(username or "").lower())


class User(AbstractBaseUser):
    """A person or a machine identity (service account) of Garrison."""

    username = models.CharField(max_length=32, unique=True, validators=[username_validator])
    display_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    is_machine = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    password_changed_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["role"]

    class Meta:
        ordering: ClassVar[list[str]] = ["username"]

    def __str__(self) -> str:
        return self.username

    @property
    def is_staff(self) -> bool:
        """Garrison has no Django admin site; nobody is staff."""
        return False

    @property
    def has_totp(self) -> bool:
        """Whether a confirmed TOTP device exists (mandatory for people)."""
        return TOTPDevice.objects.filter(user=self, confirmed_at__isnull=False).exists()


class TOTPDevice(models.Model):
    """The TOTP secret of a user, sealed under the KEK, with the last step ever accepted."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="totp")
    secret_sealed = models.TextField()
    last_used_step = models.BigIntegerField(default=0)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)


class RecoveryCode(models.Model):
    """A single-use recovery code, stored as a SHA-256 hash."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)


class SetupLink(models.Model):
    """A one-time link: first admin, an invitation, or a reset of someone's access."""

    class Purpose(models.TextChoices):
        FIRST_ADMIN = "first_admin", "First admin"
        INVITE = "invite", "Invitation"
        RESET = "reset", "Access reset"

    token_hash = models.CharField(max_length=64, unique=True)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE)
    role = models.CharField(max_length=16, choices=Role.choices)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)


class AuthFailure(models.Model):
    """One failed (or not yet checked) sign-in step, counted per account and per source."""

    class Scope(models.TextChoices):
        ACCOUNT = "account"
        SOURCE = "source"

    scope = models.CharField(max_length=8, choices=Scope.choices)
    key = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["scope", "key", "created_at"])
        ]


class APIToken(models.Model):
    """An API token; only its SHA-256 is kept, the secret is shown once at creation."""

    public_id = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    can_write = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]

    @property
    def scopes(self) -> list[str]:
        """Scopes granted: ``read``, plus ``write`` for write tokens."""
        return ["read", "write"] if self.can_write else ["read"]

    @property
    def is_usable(self) -> bool:
        """Not revoked and not expired."""
        return self.revoked_at is None and self.expires_at > timezone.now()


class UserSession(AbstractBaseSession):
    """A console session, indexed by user so people can list and end their sessions."""

    public_id = models.CharField(max_length=32, unique=True, default="")
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="sessions"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    @classmethod
    def get_session_store_class(cls) -> Any:
        """The store that reads and writes this model."""
        from garrison.server.accounts.sessions import SessionStore  # noqa: PLC0415  # cycle

        return SessionStore
