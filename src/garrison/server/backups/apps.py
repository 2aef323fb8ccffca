"""Django app config for the Backups page."""

from django.apps import AppConfig


class BackupsConfig(AppConfig):
    """Backups app (no models: it reads the backup engine's events from the log store)."""

    name = "garrison.server.backups"
    label = "backups"
