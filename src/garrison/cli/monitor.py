"""`garrison monitor`: the fleet's health from the agents' records, into the database."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading

from garrison.cli.common import (
    ConfigOption,
    DataDirOption,
    configure_logging,
    load_settings,
    migrate,
    setup_django,
)
from garrison.cli.detector import notifier_for
from garrison.core.paths import DataDir

log = logging.getLogger("garrison.monitor")


def monitor(data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Keep metrics history (10 s for a day, 5 min for 30 days), services by zone, alerts and
    remediation history, and raise findings: alerts, open circuit breakers, services healthy
    in fewer than two zones, silent agents."""
    settings = load_settings(data_dir, config)
    configure_logging(settings)
    setup_django()
    migrate()
    from garrison.logstore.local import open_store  # noqa: PLC0415
    from garrison.server.fleet.health import FleetMonitor  # noqa: PLC0415  # after setup

    store = open_store(settings, writable=False)
    running = FleetMonitor(
        store,
        DataDir(settings.data_path).monitor_state,
        notifier=notifier_for(settings),
        silent_after=dt.timedelta(minutes=settings.agent_silent_minutes),
    )
    running.state_path.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("monitor: following the agents' health records")
    try:
        running.run(stop)
    finally:
        store.close()
