"""Audit events (CloudTrail-like, OCSF API Activity) and the trail that makes them durable.

Every API call, console request, state-changing CLI command and automatic action of Garrison
becomes one event on the ``audit`` stream. Secrets never reach the store: parameters are
redacted by key and by pattern before the event is built.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from garrison.core.errors import StoreError
from garrison.core.redact import redact
from garrison.logstore.store import Store

STREAM = "audit"
Outcome = Literal["success", "denied", "error"]
ActorType = Literal["user", "token", "host", "system", "cli", "anonymous"]

_SECRET_KEY = re.compile(
    r"(?i)pass(word)?|secret|token|otp|totp|code|csrf|authorization|cookie|session|key"
)
_MAX_VALUE = 500


class Actor(msgspec.Struct, frozen=True, omit_defaults=True):
    """Who acted: a user (console or token), a host identity, the system or the local CLI."""

    type: ActorType
    name: str = ""
    token_id: str = ""
    role: str = ""


class AuditEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """One audited action."""

    event_id: str
    time: str
    actor: Actor
    action: str
    outcome: Outcome
    read_only: bool
    source_ip: str = ""
    user_agent: str = ""
    resource: str = ""
    request_parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    request_id: str = ""
    status: int = 0
    error_code: str = ""
    category: str = "api_activity"


def new_id(prefix: str = "evt") -> str:
    """A unique, time-sortable-enough id for events and requests."""
    return f"{prefix}_{uuid.uuid4().hex}"


def now_iso() -> str:
    """Event time: UTC with microseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def redact_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters safe to store: secret-looking keys masked, long values cut, patterns redacted."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if _SECRET_KEY.search(str(key)):
            out[str(key)] = "***"
        elif isinstance(value, Mapping):
            out[str(key)] = redact_parameters(value)
        elif isinstance(value, list | tuple):
            out[str(key)] = [redact(str(v))[:_MAX_VALUE] for v in value[:50]]
        elif isinstance(value, bool | int | float) or value is None:
            out[str(key)] = value
        else:
            out[str(key)] = redact(str(value))[:_MAX_VALUE]
    return out


def outcome_for(status: int) -> Outcome:
    """Success below 400; refused (401, 403, 429) is `denied`; everything else `error`."""
    if status < 400:
        return "success"
    if status in {401, 403, 429}:
        return "denied"
    return "error"


class AuditTrail:
    """Writes audit events to the store; a failure raises, so the caller can refuse to act."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, event: AuditEvent) -> int:
        """Make `event` durable; returns its offset in the audit stream."""
        try:
            (offset,) = self.store.append(STREAM, [msgspec.to_builtins(event)])
        except OSError as exc:
            raise StoreError(f"cannot record the audit event: {exc}") from exc
        return offset
