"""Line charts of metric history as SVG drawn on the server (no script: the console's CSP)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

MAX_POINTS = 360


@dataclass(frozen=True)
class Chart:
    """A polyline over `start`..`end`, scaled to 0..`top` (the unit's top: 100 for percents)."""

    title: str
    unit: str
    points: str
    latest: float | None
    top: float
    width: int
    height: int
    start: dt.datetime
    end: dt.datetime

    @property
    def empty(self) -> bool:
        """Nothing to draw in the range."""
        return not self.points


def _thin(values: Sequence[tuple[dt.datetime, float]]) -> list[tuple[dt.datetime, float]]:
    """At most `MAX_POINTS`, each the maximum of its run (a spike stays visible)."""
    if len(values) <= MAX_POINTS:
        return list(values)
    run = -(-len(values) // MAX_POINTS)
    return [
        (values[i][0], max(v for _, v in values[i : i + run])) for i in range(0, len(values), run)
    ]


def line(
    title: str,
    unit: str,
    values: Sequence[tuple[dt.datetime, float]],
    start: dt.datetime,
    end: dt.datetime,
    *,
    top: float | None = None,
    width: int = 600,
    height: int = 120,
) -> Chart:
    """The chart of `values` (time-ordered) between `start` and `end`."""
    thinned = _thin(values)
    highest = top if top is not None else max([v for _, v in thinned] + [1.0]) * 1.1
    span = max((end - start).total_seconds(), 1.0)
    coords = [
        f"{(at - start).total_seconds() / span * width:.1f},"
        f"{height - min(v, highest) / highest * (height - 4) - 2:.1f}"
        for at, v in thinned
    ]
    latest = values[-1][1] if values else None
    return Chart(
        title, unit, " ".join(coords), latest, round(highest, 2), width, height, start, end
    )
