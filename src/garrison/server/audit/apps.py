"""Django app config for the audit trail."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Audit app."""

    name = "garrison.server.audit"
    label = "audit"
