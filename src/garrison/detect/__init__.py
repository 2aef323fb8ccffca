"""Threat detection: Sigma rules over normalized events, in event time (claim M6)."""
