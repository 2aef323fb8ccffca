"""Shared plain-Python building blocks: settings, errors, crypto, PKI/TLS."""
