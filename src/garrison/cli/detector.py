"""`garrison detector`: follow the log store with the detection rules, into findings."""

from __future__ import annotations

import logging
import shlex
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from garrison.cli.common import (
    ConfigOption,
    DataDirOption,
    configure_logging,
    load_settings,
    migrate,
    setup_django,
)
from garrison.core.errors import UsageError
from garrison.core.paths import DataDir
from garrison.core.secrets import KeyRing
from garrison.core.settings import Settings

if TYPE_CHECKING:
    from garrison.detect.notify import Notifier
    from garrison.detect.respond import Response, ScriptResponder
    from garrison.logstore.store import Store

log = logging.getLogger("garrison.detect")


def notifier_for(settings: Settings) -> Notifier | None:
    """The notification routes the settings name (None when there are none)."""
    from garrison.detect.notify import Mailer, Notifier, Route  # noqa: PLC0415  # role-only

    routes = [Route.parse(spec) for spec in settings.notify_routes]
    if not routes:
        return None
    mailer = None
    if settings.notify_smtp_url:
        sender = settings.notify_email_from or f"garrison@{socket.getfqdn()}"
        mailer = Mailer(settings.notify_smtp_url, sender)
    data = DataDir(settings.data_path)
    return Notifier(
        routes,
        notify_key(data),
        data.notify_spool,
        mailer=mailer,
        console_url=settings.console_url,
        max_per_minute=settings.notify_max_per_minute,
    )


def responder_for(settings: Settings) -> ScriptResponder | None:
    """The block hook the settings name (None without `respond_command`)."""
    from garrison.detect.respond import ScriptResponder  # noqa: PLC0415  # role-only

    if not settings.respond_command:
        return None
    return ScriptResponder(
        shlex.split(settings.respond_command),
        min_severity=settings.respond_min_severity,
        allow=settings.detect_allowlist,
        dry_run=settings.respond_dry_run,
        block_seconds=settings.respond_block_seconds,
    )


def _auditor(store: Store) -> Callable[[Response], None]:
    """Records each response on the audit stream."""
    from garrison.events.audit import Actor, AuditEvent, AuditTrail, new_id, now_iso  # noqa: PLC0415

    trail = AuditTrail(store)

    def record(response: Response) -> None:
        log.warning(
            "detector: response %s for %s: %s", response.outcome, response.src_ip, response.detail
        )
        trail.record(
            AuditEvent(
                event_id=new_id(),
                time=now_iso(),
                actor=Actor("system", name="detector"),
                action="detector.respond.block",
                outcome="error" if response.outcome == "failed" else "success",
                read_only=response.outcome in {"dry-run", "skipped"},
                resource=response.src_ip,
                request_parameters={
                    "finding": response.finding_id,
                    "outcome": response.outcome,
                    "detail": response.detail,
                },
            )
        )

    return record


def notify_key(data: DataDir) -> bytes:
    """The HMAC key of notification webhooks, derived from the data dir's KEK (never stored)."""
    return KeyRing.load_or_create(data.kek).passphrase("notify-webhook")


def detector(data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Run the catalog and the `detect_rules` folders over every stream, live."""
    settings = load_settings(data_dir, config)
    configure_logging(settings)
    folders = [Path(p) for p in settings.detect_rules]
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"detect_rules folder {folder} does not exist")
    intel = Path(settings.detect_ip_lists) if settings.detect_ip_lists else None
    if intel is not None and not intel.is_dir():
        raise UsageError(f"detect_ip_lists folder {intel} does not exist")
    setup_django()
    migrate()
    from garrison.detect import rules  # noqa: PLC0415  # only this role needs them
    from garrison.detect.intel import IPLists  # noqa: PLC0415
    from garrison.detect.live import Detector  # noqa: PLC0415
    from garrison.logstore.local import open_store  # noqa: PLC0415
    from garrison.server.findings.sink import DatabaseSink  # noqa: PLC0415  # after setup

    loaded = rules.load(folders)
    for problem in loaded.problems:
        log.error("detector: rule skipped: %s", problem)
    store = open_store(settings)  # writable: responses are audited into it
    data = DataDir(settings.data_path)
    lists = IPLists(settings.detect_allowlist, intel)
    running = Detector(
        store,
        loaded,
        DatabaseSink(),
        data.detector_state,
        lists=lists,
        notifier=notifier_for(settings),
        responder=responder_for(settings),
        audit=_auditor(store),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("detector: %d rules over the log store", len(loaded.rules))
    try:
        running.run(stop)
    finally:
        store.close()
