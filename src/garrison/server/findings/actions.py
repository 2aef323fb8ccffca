"""The one write path for findings people change: archive and bring back."""

from __future__ import annotations

from garrison.core.errors import PermissionDeniedError, ValidationError
from garrison.server.accounts.models import User
from garrison.server.accounts.roles import OPERATE
from garrison.server.findings.models import STATUSES, Finding


def do_set_status(actor: User, finding: Finding, status: str) -> Finding:
    """Archive a finding (dealt with) or make it active again; operators and admins only.

    The request itself is the audit event (the audit middleware records who, what, when).
    """
    if actor.role not in OPERATE:
        raise PermissionDeniedError("your role may not change findings")
    if status not in STATUSES:
        raise ValidationError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    if finding.status != status:
        finding.status = status
        finding.save(update_fields=["status", "updated_at"])
    return finding
