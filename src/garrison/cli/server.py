"""`garrison server`: the control plane under uvicorn, HTTPS only, certificate renewed live."""

from __future__ import annotations

import asyncio
import logging
import ssl

from garrison.cli.common import ConfigOption, DataDirOption, ListenOption, load_settings, migrate
from garrison.cli.common import setup_django as _setup_django
from garrison.core.pki import CertificateAuthority
from garrison.core.secrets import KeyRing
from garrison.core.settings import Settings
from garrison.core.tls import renew_if_due, server_context

log = logging.getLogger("garrison.server")
CERT_NAME = "server"
RENEW_CHECK_SECONDS = 3600


def server_hosts(settings: Settings) -> list[str]:
    """Names the server certificate covers."""
    from urllib.parse import urlsplit  # noqa: PLC0415  # tiny, keeps the module header short

    public = urlsplit(settings.console_url).hostname or settings.host
    return list(dict.fromkeys([public, settings.host, "localhost", "127.0.0.1", "::1"]))


async def _renew_forever(
    ctx: ssl.SSLContext, ca: CertificateAuthority, keyring: KeyRing, hosts: list[str]
) -> None:
    while True:
        await asyncio.sleep(RENEW_CHECK_SECONDS)
        issued = renew_if_due(ctx, ca, keyring, CERT_NAME, hosts)
        if issued is not None:
            log.info("server certificate renewed; valid until %s", issued.not_after.isoformat())


def server(
    data_dir: DataDirOption = None, config: ConfigOption = None, listen: ListenOption = None
) -> None:
    """Run the control plane (console and API) over HTTPS."""
    settings = load_settings(data_dir, config, listen)
    _setup_django()
    migrate()
    from django.conf import settings as django_settings  # noqa: PLC0415  # after setup

    from garrison.server.asgi import application  # noqa: PLC0415  # after setup
    from garrison.server.bootstrap import certificate_authority  # noqa: PLC0415

    prepared = django_settings.PREPARED
    ca = certificate_authority(prepared)
    hosts = server_hosts(settings)
    issued = ca.ensure_server(CERT_NAME, hosts)
    ctx = server_context(issued, prepared.keyring, CERT_NAME)

    import uvicorn  # noqa: PLC0415  # only the server role needs it

    config_ = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        lifespan="off",
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    config_.load()
    config_.ssl = ctx  # our context: TLS 1.2+ and Mozilla intermediate ciphers
    uv = uvicorn.Server(config_)

    async def main() -> None:
        renew = asyncio.create_task(_renew_forever(ctx, ca, prepared.keyring, hosts))
        try:
            await uv.serve()
        finally:
            renew.cancel()

    log.info("serving %s", settings.console_url)
    asyncio.run(main())
