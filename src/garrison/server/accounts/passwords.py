"""Password rules beyond Django's validators."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from garrison.server.accounts.models import User


class MaximumLengthValidator:
    """Refuse absurdly long passwords (they only cost CPU in the hasher)."""

    max_length = 256

    def validate(self, password: str, user: User | None = None) -> None:
        """Raise when the password is longer than `max_length`."""
        if len(password) > self.max_length:
            raise ValidationError(
                f"This password is too long: use at most {self.max_length} characters.",
                code="password_too_long",
            )

    def get_help_text(self) -> str:
        """Shown beside password fields."""
        return f"Your password can be at most {self.max_length} characters."
