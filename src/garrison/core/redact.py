"""Redaction of secrets (tokens, passwords, TOTP codes, private keys) before anything is logged."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

_PATTERNS = [
    (re.compile(r"grs_[A-Za-z0-9]+_[A-Za-z0-9_-]+"), "grs_***"),
    (re.compile(r"(?i)(bearer\s+)[^\s,;\"']+"), r"\1***"),
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|otp|code|totp)[\"']?\s*[=:]\s*[\"']?)[^\s&,;\"']+"
        ),
        r"\1***",
    ),
    (re.compile(r"(?i)((?:postgres(?:ql)?|smtps?)://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "[private key redacted]",
    ),
    (re.compile(r"/setup/[A-Za-z0-9_-]{20,}"), "/setup/***"),
]


def redact(text: str) -> str:
    """Replace every secret-looking substring of `text` with a placeholder."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_url(url: str) -> str:
    """`url` with its password (if any) replaced by ``***``."""
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@", 1) if password else url


class RedactFilter(logging.Filter):
    """Logging filter that redacts the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message in place; never drops a record."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
