"""Console forms for sign-in, setup and self-service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation

from garrison.server.accounts.roles import Role


class SignInForm(forms.Form):
    """Username and password."""

    username = forms.CharField(
        max_length=32, widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True})
    )
    password = forms.CharField(
        max_length=256,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class CodeForm(forms.Form):
    """A 6-digit TOTP code or a recovery code."""

    code = forms.CharField(
        max_length=20,
        label="Authenticator code or recovery code",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


class SetupForm(forms.Form):
    """First admin, invitation or reset: choose a password and confirm TOTP."""

    username = forms.CharField(
        max_length=32, required=False, widget=forms.TextInput(attrs={"autocomplete": "username"})
    )
    display_name = forms.CharField(max_length=100, required=False, label="Display name")
    password = forms.CharField(
        max_length=256,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password_again = forms.CharField(
        max_length=256,
        strip=False,
        label="Password (again)",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    code = forms.CharField(
        max_length=8,
        label="Code from your authenticator app",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self) -> dict[str, Any]:
        """The two passwords must match."""
        data = super().clean() or {}
        if data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class PasswordChangeForm(forms.Form):
    """Change one's own password."""

    current_password = forms.CharField(
        label="Current password",
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    new_password = forms.CharField(
        label="New password",
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )


class InviteForm(forms.Form):
    """Invite a person."""

    username = forms.CharField(max_length=32)
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    """Create an API token for oneself."""

    name = forms.CharField(max_length=100, help_text="Where the token is used, e.g. 'ci-deploy'.")
    write = forms.BooleanField(required=False, label="Write scope (read is always granted)")
    days = forms.IntegerField(min_value=1, max_value=365, initial=90, label="Lifetime in days")
