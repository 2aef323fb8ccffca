"""Durations written the way people write them: ``500ms``, ``5s``, ``10m``, ``8h``, ``30d``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: object) -> float:
    """`text` in seconds; `ValueError` naming the text when it is not a duration."""
    m = _DURATION.fullmatch(str(text).strip())
    if m is None:
        raise ValueError(f"cannot read the duration {text!r}: write e.g. 5s, 10m or 1h")
    return float(m[1]) * _UNIT_SECONDS[m[2]]
