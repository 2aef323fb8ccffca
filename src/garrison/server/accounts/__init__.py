"""Accounts: people and machine identities, roles, passwords, TOTP, sessions and API tokens."""
