"""TOTP (RFC 6238) with a +-1 step window and replay prevention, and recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import pyotp
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from garrison.server.accounts.models import RecoveryCode, TOTPDevice, User

STEP_SECONDS = 30
WINDOW = 1
RECOVERY_CODES = 10
ISSUER = "Garrison"
_PURPOSE = "totp-seed"


def new_secret() -> str:
    """A fresh 160-bit base32 TOTP secret."""
    return pyotp.random_base32(32)


def seal(secret: str) -> str:
    """Encrypt a TOTP secret for storage."""
    return str(settings.PREPARED.keyring.seal(secret.encode(), purpose=_PURPOSE))


def unseal_text(sealed: str) -> str:
    """Decrypt a TOTP secret sealed by `seal`."""
    return bytes(settings.PREPARED.keyring.open(sealed, purpose=_PURPOSE)).decode()


def unseal(device: TOTPDevice) -> str:
    """Decrypt a stored TOTP secret."""
    return unseal_text(device.secret_sealed)


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI that authenticator apps read from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (within +-1 of now) whose code equals `code`, if any."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def accept_code(device: TOTPDevice, code: str) -> bool:
    """Accept `code` once: the step must be newer than any step accepted before (no replay)."""
    step = matching_step(unseal(device), code)
    if step is None:
        return False
    updated = TOTPDevice.objects.filter(pk=device.pk, last_used_step__lt=step).update(
        last_used_step=step
    )
    return updated == 1


def _hash_code(code: str) -> str:
    normalized = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalized.encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with fresh ones; returns them (shown once)."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    codes = [
        "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))
        for _ in range(RECOVERY_CODES)
    ]
    with transaction.atomic():
        RecoveryCode.objects.filter(user=user).delete()
        RecoveryCode.objects.bulk_create(
            RecoveryCode(user=user, code_hash=_hash_code(c)) for c in codes
        )
    return codes


def accept_recovery_code(user: User, code: str) -> bool:
    """Consume one unused recovery code of `user`."""
    updated = RecoveryCode.objects.filter(
        user=user, code_hash=_hash_code(code), used_at__isnull=True
    ).update(used_at=timezone.now())
    return updated == 1


def remaining_recovery_codes(user: User) -> int:
    """How many recovery codes are still unused."""
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()
