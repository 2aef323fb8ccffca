"""Per-host activity: last seen and events per second, published for the fleet view."""

from __future__ import annotations

import time
from pathlib import Path

from garrison.pipeline.activity import WINDOW_MINUTES, HostActivity, read


def test_rates_over_the_window_and_publish(tmp_path: Path) -> None:
    """Events recorded now count in the rate; the snapshot round-trips through the file."""
    activity = HostActivity()
    activity.record("web-1", "ssh", 600)
    activity.record("web-1", "web", 300)
    activity.record("db-1")  # a health check: seen, nothing sent
    snap = activity.snapshot()
    assert snap["web-1"]["events_per_second"] == {
        "ssh": round(600 / (WINDOW_MINUTES * 60), 2),
        "web": round(300 / (WINDOW_MINUTES * 60), 2),
    }
    assert snap["db-1"]["events_per_second"] == {}
    later = activity.snapshot(time.time() + (WINDOW_MINUTES + 1) * 60)
    assert later["web-1"]["events_per_second"] == {"ssh": 0.0, "web": 0.0}
    activity.publish(tmp_path / "a.json")
    assert read(tmp_path / "a.json") == snap
    assert read(tmp_path / "missing.json") == {}
