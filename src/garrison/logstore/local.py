"""The store of a data directory, with its signing key (the embedded default and the collector)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from garrison.core.paths import DataDir
from garrison.core.secrets import KeyRing
from garrison.core.settings import Settings
from garrison.demo import DEMO_RETENTION_DAYS, DEMO_STREAM
from garrison.host import METRICS_STREAM
from garrison.logstore.digests import SignedDigest, Signer
from garrison.logstore.export import DirectoryExport, WebhookExport
from garrison.logstore.store import Store, StoreConfig

log = logging.getLogger("garrison.logstore")


def signer_for(data: DataDir, keyring: KeyRing) -> Signer:
    """The data dir's digest signing key (created on first use, encrypted under the KEK)."""
    return Signer.load_or_create(data.digest_key, keyring.passphrase("logstore-digest"))


#: Raw snapshots stay in the store two days; the control plane keeps the history, downsampled.
METRICS_RETENTION_DAYS = 2


def config_for(settings: Settings) -> StoreConfig:
    """Retention and rolling policy from the settings."""
    return StoreConfig(
        retention_days={
            "audit": settings.retention_audit_days,
            DEMO_STREAM: DEMO_RETENTION_DAYS,
            METRICS_STREAM: METRICS_RETENTION_DAYS,
        },
        default_retention_days=settings.retention_days,
    )


def open_store(settings: Settings, *, writable: bool = True) -> Store:
    """The data dir's store; writable stores can seal, sign and export digests."""
    data = DataDir(settings.data_path).ensure()
    if not writable:
        return Store(data.logstore, config=config_for(settings))
    signer = signer_for(data, KeyRing.load_or_create(data.kek))
    sinks: list[Callable[[SignedDigest], None]] = []
    if settings.digest_export_dir:
        try:
            sinks.append(DirectoryExport(Path(settings.digest_export_dir), signer))
        except OSError as exc:  # the store works without its off-host copy; say so loudly
            log.error("digest export to %s unavailable: %s", settings.digest_export_dir, exc)
    if settings.digest_webhook_url:
        sinks.append(WebhookExport(settings.digest_webhook_url, data.logstore / ".webhook-spool"))

    def export(signed: SignedDigest) -> None:
        for sink in sinks:
            try:
                sink(signed)
            except OSError as exc:  # the digest is durable locally; the copy catches up later
                log.error("digest export failed: %s", exc)

    return Store(
        data.logstore,
        signer=signer,
        config=config_for(settings),
        on_digest=export if sinks else None,
    )
