"""Country and network (ASN) of an address, offline: geoip2fast's bundled database.

The database (IPv4 and IPv6, country and ASN, derived from GeoLite2 data: CC BY-SA 4.0) ships
with the package, so nothing is fetched at run time. It is loaded on the first lookup (about
0.25 s and 100 MB), which happens when a finding is opened, not per event.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

log = logging.getLogger("garrison.detect")

DATA_FILE = "geoip2fast-asn-ipv6.dat.gz"


@lru_cache(maxsize=1)
def _database() -> Any:
    from geoip2fast import GeoIP2Fast  # noqa: PLC0415  # loaded only when a finding needs it

    return GeoIP2Fast(geoip2fast_data_file=DATA_FILE, verbose=False)


@lru_cache(maxsize=65536)
def locate(ip: str) -> dict[str, str]:
    """``country`` (ISO code), ``country_name`` and ``asn`` (the network's name) of `ip`;
    empty for private, reserved or unknown addresses."""
    try:
        found = _database().lookup(ip)
    except (OSError, ValueError) as exc:
        log.error("geo: cannot look up %s: %s", ip, exc)
        return {}
    if getattr(found, "is_private", False):
        return {}
    out = {
        "country": str(getattr(found, "country_code", "") or ""),
        "country_name": str(getattr(found, "country_name", "") or ""),
        "asn": str(getattr(found, "asn_name", "") or ""),
    }
    return {k: v for k, v in out.items() if v and v != "--" and not v.startswith("<")}
