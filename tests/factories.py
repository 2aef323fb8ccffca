"""Test factories for accounts: people with known passwords and TOTP, tokens, TOTP codes."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

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


def seed_finding(**changes: Any) -> dict[str, Any]:
    """A finding as the detector hands it to its sink."""
    finding: dict[str, Any] = {
        "id": "fnd_0123456789abcdef0123456789abcdef",
        "type": "UnauthorizedAccess:EC2/SSHBruteForce",
        "severity": 5.0,
        "severity_label": "medium",
        "title": "SSH brute force (fast)",
        "description": "One source failed to authenticate over SSH at least 10 times.",
        "remediation": "Block the source address.",
        "rule": "ssh_bruteforce_fast",
        "src_ip": "203.0.113.5",
        "user": "root",
        "host": "web-1",
        "group": {"src": "203.0.113.5"},
        "first_seen": "2026-12-01T10:00:00Z",
        "last_seen": "2026-12-01T10:00:45Z",
        "count": 10,
        "evidence": ["ssh:0", "ssh:1"],
    }
    finding.update(changes)
    return finding
