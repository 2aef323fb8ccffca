"""`garrison collector`: receive agents' batches over mTLS and make them durable in the store."""

from __future__ import annotations

from garrison.cli.common import ConfigOption, DataDirOption, configure_logging, load_settings


def collector(data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Serve agents on `collector_port` (mTLS with host certificates from Garrison's CA)."""
    from garrison.pipeline.collector import run  # noqa: PLC0415  # only this role needs it

    settings = load_settings(data_dir, config)
    configure_logging(settings)
    run(settings)
