"""Django app config for SSH certificates."""

from django.apps import AppConfig


class SSHConfig(AppConfig):
    """SSH app."""

    name = "garrison.server.ssh"
    label = "ssh"
