"""The role names core knows (for settings checks) are the model's roles."""

from __future__ import annotations

from garrison.core.roles import ROLE_NAMES
from garrison.server.accounts.roles import Role


def test_core_role_names_are_the_models_roles() -> None:
    assert [r.value for r in Role] == list(ROLE_NAMES)
