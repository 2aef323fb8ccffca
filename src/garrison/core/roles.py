"""The names of Garrison's roles, for code that runs without Django (settings checks).

`garrison.server.accounts.roles.Role` is the model's choice list with these values; a test
keeps the two in step.
"""

ROLE_NAMES = ("admin", "operator", "auditor", "developer")
