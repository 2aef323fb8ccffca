"""Django app config for the fleet."""

from django.apps import AppConfig


class FleetConfig(AppConfig):
    """Fleet app."""

    name = "garrison.server.fleet"
    label = "fleet"
