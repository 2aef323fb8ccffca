"""The control plane's handle on the log store and the audit trail (opened once per process)."""

from __future__ import annotations

import threading
from functools import cache

from django.conf import settings

from garrison.events.audit import AuditTrail
from garrison.logstore.local import open_store
from garrison.logstore.store import Store

_lock = threading.Lock()


@cache
def store() -> Store:
    """The data dir's log store, writable (the server signs digests of what it writes)."""
    with _lock:
        return open_store(settings.GARRISON)


def trail() -> AuditTrail:
    """The audit trail writing into `store()`."""
    return AuditTrail(store())
