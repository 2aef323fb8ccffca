"""The detector's `FindingSink` into the control-plane database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from garrison.server.findings.models import Finding, Suppression


def suppressed(finding_type: str, src: str, host: str) -> bool:
    """Whether an unexpired suppression covers a new finding of this type, source and host."""
    return (
        Suppression.objects.filter(type=finding_type, expires_at__gt=timezone.now())
        .filter(Q(src="") | Q(src=src))
        .filter(Q(host="") | Q(host=host))
        .exists()
    )


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def clean(value: Any) -> Any:
    """Without NUL characters, which PostgreSQL refuses in text and JSON (a URL may hold %00)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    return value


class DatabaseSink:
    """Upserts findings by id in one transaction; the row's status is the people's to change."""

    def upsert(self, findings: list[dict[str, Any]]) -> list[str]:
        """Create or update each finding (what the engine says it is now); the ids of the new
        findings that are not suppressed (what is announced)."""
        created_ids = []
        with transaction.atomic():
            for f in map(clean, findings):
                row, created = Finding.objects.update_or_create(
                    finding_id=f["id"],
                    defaults={
                        "type": f["type"][:200],
                        "severity": float(f["severity"]),
                        "title": f["title"][:300],
                        "description": f["description"],
                        "remediation": f["remediation"],
                        "rule": f["rule"][:200],
                        "src": str(
                            f.get("src_ip") or f.get("src_host") or f.get("source_ip") or ""
                        )[:255],
                        "country": str(f.get("country") or "")[:2],
                        "asn": str(f.get("asn") or "")[:255],
                        "user": str(f.get("user") or "")[:255],
                        "host": str(f.get("host") or "")[:255],
                        "group": f["group"],
                        "first_seen": _time(f["first_seen"]),
                        "last_seen": _time(f["last_seen"]),
                        "count": int(f["count"]),
                        "evidence": f["evidence"],
                    },
                )
                if created and suppressed(row.type, row.src, row.host):
                    row.status = "suppressed"
                    row.save(update_fields=["status", "updated_at"])
                elif created:
                    created_ids.append(f["id"])
        return created_ids
