"""Test factories for accounts: people with known passwords and TOTP, tokens, TOTP codes."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import pyotp

from garrison.server.accounts import actions
from garrison.server.accounts.models import User

PASSWORD = "correct horse battery staple 42"
_seq = itertools.count(1)


@dataclass
class Person:
    """A user created for a test, with what is needed to sign in as them."""

    user: User
    password: str
    totp_secret: str
    recovery_codes: list[str]

    def code(self, offset_steps: int = 0) -> str:
        """The TOTP code for now (or `offset_steps` 30-second steps away)."""
        return pyotp.TOTP(self.totp_secret).at(time.time() + 30 * offset_steps)


def make_person(role: str = "admin", username: str | None = None, display_name: str = "") -> Person:
    """A person with password `PASSWORD` and a confirmed TOTP device."""
    name = username or f"{role}{next(_seq)}"
    enrolment = actions.do_create_person(
        None, username=name, role=role, password=PASSWORD, display_name=display_name
    )
    return Person(enrolment.user, PASSWORD, enrolment.totp_secret, enrolment.recovery_codes)


def make_token(user: User, *, write: bool = True, actor: User | None = None) -> str:
    """An API token secret for `user` (created by `actor`, default the user)."""
    _, secret = actions.do_create_token(
        actor or user, owner=user, name="test", write=write and user.role != "auditor"
    )
    return secret
