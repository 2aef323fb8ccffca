"""The four roles and what each may do; the single source for every permission check."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    """Roles of people and machine identities in Garrison."""

    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"
    AUDITOR = "auditor", "Auditor (read-only)"
    DEVELOPER = "developer", "Developer"


#: Roles that may read fleet-wide data (users, hosts, findings, logs).
READ_ALL = frozenset({Role.ADMIN, Role.OPERATOR, Role.AUDITOR})
#: Roles that may change operational state (hosts, findings, responses) in later issues.
OPERATE = frozenset({Role.ADMIN, Role.OPERATOR})
#: Roles that may manage people, roles and machine identities.
MANAGE_ACCOUNTS = frozenset({Role.ADMIN})
#: Roles that may manage their own credentials (tokens, sessions, password) through the API.
SELF_SERVICE = frozenset({Role.ADMIN, Role.OPERATOR, Role.DEVELOPER})
