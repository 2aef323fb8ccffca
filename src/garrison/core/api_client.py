"""Calls to the control plane's API from the command line (join, `ssh login`): HTTPS only,
TLS 1.2 or later, the server checked against the system's trust store or a given CA file."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from garrison.core.errors import UsageError

TIMEOUT = 30.0


def post_json(
    server_url: str,
    path: str,
    body: dict[str, Any],
    *,
    token: str | None = None,
    server_ca: Path | None = None,
    what: str = "the request",
) -> dict[str, Any]:
    """POST `body` to `server_url` + `path`; the JSON answer, or `UsageError` with the server's
    own message (refusals) or why it could not be reached."""
    if not server_url.startswith("https://"):
        raise UsageError(f"the server URL must start with https://, not {server_url!r}")
    context = ssl.create_default_context(cafile=str(server_ca) if server_ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310  # https checked above
        server_url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=TIMEOUT) as response:  # noqa: S310  # nosec B310
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read() or b"{}").get("error", {}).get("message", exc.reason)
        except ValueError:
            detail = exc.reason
        raise UsageError(f"the server refused {what}: {detail}") from None
    except OSError as exc:
        raise UsageError(f"cannot reach {server_url}: {exc}") from None
    return answer
