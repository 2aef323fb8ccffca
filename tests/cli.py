"""Running the real `garrison` CLI in a subprocess, with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def garrison_env(**extra: str) -> dict[str, str]:
    """This environment without Garrison or Django settings (pytest-django sets both)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "DJANGO_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def garrison(
    *args: str, data_dir: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`garrison ARGS [--data-dir DIR]`, its output captured (text), never raising."""
    argv = [sys.executable, "-m", "garrison", *args]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    return subprocess.run(
        argv,
        env=garrison_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
