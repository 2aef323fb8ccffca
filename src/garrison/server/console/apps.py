"""Django app config for the console shell."""

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """Console app."""

    name = "garrison.server.console"
    label = "console"
