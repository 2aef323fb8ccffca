"""Django app config for findings."""

from django.apps import AppConfig


class FindingsConfig(AppConfig):
    """Findings app."""

    name = "garrison.server.findings"
    label = "findings"
