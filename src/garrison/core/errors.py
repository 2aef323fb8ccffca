"""The one error hierarchy of Garrison, and how each error maps to an exit code and HTTP status.

GarrisonError                 exit 1   HTTP 500  internal_error
+-- ConfigError               exit 2   HTTP 500  config_error
+-- UsageError                exit 2   HTTP 400  invalid_request
|   +-- ValidationError       exit 2   HTTP 400  validation_error
+-- NotFoundError             exit 4   HTTP 404  not_found
+-- ConflictError             exit 5   HTTP 409  conflict
+-- PermissionDeniedError     exit 6   HTTP 403  permission_denied
+-- ThrottledError            exit 7   HTTP 429  throttled
+-- CryptoError               exit 8   HTTP 500  crypto_error
"""

from __future__ import annotations


class GarrisonError(Exception):
    """Root of every error Garrison raises on purpose."""

    exit_code = 1
    http_status = 500
    code = "internal_error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(GarrisonError):
    """A setting is unknown or has a value that is not allowed."""

    exit_code = 2
    code = "config_error"


class UsageError(GarrisonError):
    """The caller asked for something malformed."""

    exit_code = 2
    http_status = 400
    code = "invalid_request"


class ValidationError(UsageError):
    """A value given by the caller breaks a rule (password policy, name format, ...)."""

    code = "validation_error"


class NotFoundError(GarrisonError):
    """The named object does not exist (or the caller may not know it does)."""

    exit_code = 4
    http_status = 404
    code = "not_found"


class ConflictError(GarrisonError):
    """The request clashes with the current state (duplicate name, already used link)."""

    exit_code = 5
    http_status = 409
    code = "conflict"


class PermissionDeniedError(GarrisonError):
    """The caller is known but not allowed to do this."""

    exit_code = 6
    http_status = 403
    code = "permission_denied"


class ThrottledError(GarrisonError):
    """Too many attempts; the caller must wait."""

    exit_code = 7
    http_status = 429
    code = "throttled"

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class CryptoError(GarrisonError):
    """A key is missing, wrong or cannot decrypt what it should."""

    exit_code = 8
    code = "crypto_error"


class StoreError(GarrisonError):
    """The log store cannot take or serve data right now (I/O failure, read-only)."""

    exit_code = 9
    http_status = 503
    code = "store_unavailable"


class StoreCorruptError(StoreError):
    """Stored data is damaged somewhere other than an unfinished tail write."""

    exit_code = 1
    code = "store_corrupt"
