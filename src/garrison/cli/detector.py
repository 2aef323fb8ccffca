"""`garrison detector`: follow the log store with the detection rules, into findings."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

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
from garrison.detect.notify import Notifier, Route

log = logging.getLogger("garrison.detect")


def notifier_for(settings: Settings) -> Notifier | None:
    """The notification routes the settings name (None when there are none)."""
    routes = [
        Route(kind, url, settings.notify_min_severity)
        for kind, url in (
            ("webhook", settings.notify_webhook_url),
            ("slack", settings.notify_slack_url),
        )
        if url
    ]
    if not routes:
        return None
    data = DataDir(settings.data_path)
    return Notifier(
        routes,
        notify_key(data),
        data.notify_spool,
        max_per_minute=settings.notify_max_per_minute,
    )


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
    store = open_store(settings, writable=False)
    data = DataDir(settings.data_path)
    lists = IPLists(settings.detect_allowlist, intel)
    running = Detector(
        store,
        loaded,
        DatabaseSink(),
        data.detector_state,
        lists=lists,
        notifier=notifier_for(settings),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("detector: %d rules over the log store", len(loaded.rules))
    try:
        running.run(stop)
    finally:
        store.close()
