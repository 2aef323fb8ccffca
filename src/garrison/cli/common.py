"""What every command shares: settings from options, Django start-up, output consoles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from garrison.core import settings as garrison_settings
from garrison.core.errors import ConfigError, UsageError

# soft_wrap: never fold a URL, secret or path when stdout is a pipe (journald, CI logs, scripts).
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data directory (default ./garrison-data, or GARRISON_DATA_DIR)."
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Settings file (default ./garrison.toml if present)."),
]
ListenOption = Annotated[
    str | None,
    typer.Option("--listen", help="Address to serve on, HOST:PORT (IPv6 as [::1]:8443)."),
]


def _split_listen(listen: str) -> tuple[str, str]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"invalid --listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8443")
    return host.strip("[]"), port


def load_settings(
    data_dir: Path | None = None, config: Path | None = None, listen: str | None = None
) -> garrison_settings.Settings:
    """Apply command-line options as environment overrides, then load the settings.

    The overrides go into the environment so that Django's settings module and every role
    that `garrison up` starts read exactly the same values.
    """
    if data_dir is not None:
        os.environ["GARRISON_DATA_DIR"] = str(data_dir.resolve())
    if config is not None:
        os.environ["GARRISON_CONFIG"] = str(config.resolve())
    if listen is not None:
        os.environ["GARRISON_HOST"], os.environ["GARRISON_PORT"] = _split_listen(listen)
    loaded = garrison_settings.load()
    os.environ["GARRISON_DATA_DIR"] = str(loaded.data_path)
    return loaded


def setup_django() -> None:
    """Configure Django from the already-loaded environment."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "garrison.server.settings")
    import django  # noqa: PLC0415  # only commands that need the control plane pay for it

    django.setup()


def migrate(verbose: bool = False) -> None:
    """Bring the control-plane database schema up to date."""
    from django.core.management import call_command  # noqa: PLC0415  # after setup_django

    call_command("migrate", interactive=False, verbosity=1 if verbose else 0)


def audit_cli(
    settings: garrison_settings.Settings,
    action: str,
    *,
    resource: str = "",
    parameters: dict[str, object] | None = None,
    outcome: str = "success",
    error_code: str = "",
) -> None:
    """Record a state-changing CLI command on the audit stream (actor: the local OS user)."""
    import pwd  # noqa: PLC0415  # only state-changing commands pay for these imports

    from garrison.events import audit  # noqa: PLC0415
    from garrison.logstore.local import open_store  # noqa: PLC0415

    event = audit.AuditEvent(
        event_id=audit.new_id(),
        time=audit.now_iso(),
        # The real uid, not $USER or $LOGNAME, which the caller can set to anything.
        actor=audit.Actor(type="cli", name=pwd.getpwuid(os.getuid()).pw_name),
        action=action,
        outcome=outcome,  # type: ignore[arg-type]  # callers pass one of the Outcome literals
        read_only=False,
        resource=resource,
        request_parameters=audit.redact_parameters(parameters or {}),
        error_code=error_code,
        category="cli",
    )
    store = open_store(settings)
    try:
        audit.AuditTrail(store).record(event)
    finally:
        store.close()


def configure_logging(settings: garrison_settings.Settings) -> None:
    """Log to stderr at the configured level, secrets redacted (roles without Django)."""
    import logging  # noqa: PLC0415  # roles only

    from garrison.core.redact import RedactFilter  # noqa: PLC0415

    handler = logging.StreamHandler()
    handler.addFilter(RedactFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)


def read_secret_file(path: Path, what: str) -> str:
    """A password or token kept in a file (its text without the final newline): secrets are
    never passed as arguments, where `ps` shows them."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise UsageError(f"{what} {path} is empty")
    return secret
