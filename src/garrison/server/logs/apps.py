"""Django app config for log search."""

from django.apps import AppConfig


class LogsConfig(AppConfig):
    """Logs app."""

    name = "garrison.server.logs"
    label = "logs"
