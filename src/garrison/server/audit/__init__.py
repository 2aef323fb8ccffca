"""Audit trail: one event per API call and console request, written before anything commits."""
