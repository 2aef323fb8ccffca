"""`python -m garrison` runs the CLI (used by `garrison up` to start roles)."""

from garrison.cli.main import run

run()
