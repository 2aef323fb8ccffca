"""`RolePermission`: the default permission of every API view, closed unless a view opens it."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from garrison.server.accounts.models import APIToken, User
from garrison.server.accounts.roles import MANAGE_ACCOUNTS, Role

ALL_ROLES = frozenset(Role)


class RolePermission(permissions.BasePermission):
    """Reads need a role in ``view.read_roles``; writes need ``view.write_roles`` and a write token.

    Views that say nothing are readable by every role and writable by admins only; auditors
    never write, whatever a view declares.
    """

    message = "your role or token scope does not allow this"

    def has_permission(self, request: Request, view: Any) -> bool:
        """Check role and token scope for the request's method."""
        user = request.user
        if not isinstance(user, User) or not user.is_authenticated:
            return False
        if request.method in permissions.SAFE_METHODS:
            return user.role in getattr(view, "read_roles", ALL_ROLES)
        if user.role == Role.AUDITOR:
            self.message = "auditors are read-only"
            return False
        if isinstance(request.auth, APIToken) and not request.auth.can_write:
            self.message = "this API token has the read scope only"
            return False
        return user.role in getattr(view, "write_roles", MANAGE_ACCOUNTS)
