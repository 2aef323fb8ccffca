"""Session engine storing sessions in `UserSession`, so each is tied to its user."""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.utils import timezone

from garrison.server.accounts.models import UserSession, public_id

#: Session keys that the request middleware fills in (see middleware.SessionPolicyMiddleware).
META_USER = "_auth_user_id"
META_IP = "garrison_ip"
META_UA = "garrison_ua"


class SessionStore(DBStore):
    """Database session store that records owner, source and last activity."""

    @classmethod
    def get_model_class(cls) -> type[UserSession]:
        """The session model."""
        return UserSession

    def create_model_instance(self, data: dict[str, Any]) -> UserSession:
        """Build the row with its user, source address and user agent."""
        obj = super().create_model_instance(data)
        if not isinstance(obj, UserSession):
            raise TypeError("session model must be UserSession")
        user_id = data.get(META_USER)
        obj.user_id = int(user_id) if user_id is not None else None
        obj.ip = data.get(META_IP)
        obj.user_agent = str(data.get(META_UA, ""))[:200]
        obj.last_seen_at = timezone.now()
        existing = UserSession.objects.filter(session_key=obj.session_key).values_list(
            "public_id", "created_at"
        )
        if row := existing.first():
            obj.public_id, obj.created_at = row
        else:
            obj.public_id, obj.created_at = public_id("ses"), timezone.now()
        return obj
