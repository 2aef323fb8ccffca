"""The one write path for what people change about findings: status and suppressions."""

from __future__ import annotations

import datetime as dt
import secrets

from django.utils import timezone

from garrison.core.errors import NotFoundError, PermissionDeniedError, ValidationError
from garrison.server.accounts.models import User
from garrison.server.accounts.roles import OPERATE
from garrison.server.findings.models import STATUSES, Finding, Suppression

MAX_SUPPRESSION_DAYS = 365


def do_set_status(actor: User, finding: Finding, status: str) -> Finding:
    """Archive a finding (dealt with) or make it active again; operators and admins only.

    The request itself is the audit event (the audit middleware records who, what, when).
    """
    _require_operator(actor)
    if status not in STATUSES:
        raise ValidationError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    if finding.status != status:
        finding.status = status
        finding.save(update_fields=["status", "updated_at"])
    return finding


def _require_operator(actor: User) -> None:
    if actor.role not in OPERATE:
        raise PermissionDeniedError("your role may not change findings")


def do_add_suppression(
    actor: User, *, finding_type: str, src: str, host: str, reason: str, days: int
) -> Suppression:
    """Suppress new findings of a type (from a source, on a host) for `days`, with a reason."""
    _require_operator(actor)
    if not finding_type.strip() or not reason.strip():
        raise ValidationError("a suppression needs a finding type and a reason")
    if not 1 <= days <= MAX_SUPPRESSION_DAYS:
        raise ValidationError(f"a suppression lasts 1 to {MAX_SUPPRESSION_DAYS} days")
    return Suppression.objects.create(
        public_id=f"sup_{secrets.token_hex(8)}",
        type=finding_type.strip()[:200],
        src=src.strip()[:255],
        host=host.strip()[:255],
        reason=reason.strip()[:500],
        expires_at=timezone.now() + dt.timedelta(days=days),
        created_by=actor.username,
    )


def do_remove_suppression(actor: User, public_id: str) -> None:
    """End a suppression now (findings it covered keep their status). It stays listed, ended,
    so that what was suppressed when, by whom and why remains on record."""
    _require_operator(actor)
    found = Suppression.objects.filter(public_id=public_id.replace("\x00", "")).first()
    if found is None:
        raise NotFoundError(f"no suppression {public_id!r}")
    now = timezone.now()
    if found.expires_at > now:
        found.expires_at = now
        found.save(update_fields=["expires_at"])
