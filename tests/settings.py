"""Django settings for the test suite: the real settings on a throw-away data directory."""

import os
import tempfile

os.environ.setdefault("GARRISON_DATA_DIR", tempfile.mkdtemp(prefix="garrison-test-"))

from garrison.server.settings import *  # noqa: F403
