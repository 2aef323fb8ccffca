"""Fleet: hosts, their zones, one-time join tokens, short-lived host certificates, revocation."""
