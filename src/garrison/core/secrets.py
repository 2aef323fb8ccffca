"""Envelope encryption of secrets at rest under a key-encryption key (KEK) kept outside the DB.

The KEK is 32 random bytes in ``keys/kek`` (mode 0600). Secrets (TOTP seeds, Django's signing
key) are sealed with AES-256-GCM; private keys (CA, server) are PEM-encrypted with a passphrase
derived from the KEK, so a copy of the database or of ``pki/`` alone reveals nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from garrison.core.errors import CryptoError
from garrison.core.files import create_private

_VERSION = b"g1"
_NONCE = 12


class KeyRing:
    """Holds the KEK and seals/opens secrets with it."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise CryptoError("the key-encryption key must be 32 bytes")
        self._kek = kek

    @classmethod
    def load_or_create(cls, path: Path) -> KeyRing:
        """Read the KEK file, creating it (0600) on first use."""
        if not path.exists():
            create_private(path, secrets.token_bytes(32))  # loses a race gracefully
        return cls(path.read_bytes())

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read an existing KEK file."""
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            raise CryptoError(
                f"key-encryption key {path} is missing",
                hint="run `garrison pki init` or restore the keys/ directory from backup",
            ) from None

    def _subkey(self, purpose: str) -> bytes:
        return hmac.new(self._kek, purpose.encode(), hashlib.sha256).digest()

    def seal(self, plaintext: bytes, *, purpose: str) -> str:
        """Encrypt `plaintext`; `purpose` binds the ciphertext to one use."""
        nonce = secrets.token_bytes(_NONCE)
        ct = AESGCM(self._subkey("seal")).encrypt(nonce, plaintext, purpose.encode())
        return base64.urlsafe_b64encode(_VERSION + nonce + ct).decode()

    def open(self, token: str, *, purpose: str) -> bytes:
        """Decrypt what `seal` produced for the same purpose."""
        try:
            blob = base64.urlsafe_b64decode(token.encode())
        except ValueError:
            raise CryptoError(f"sealed {purpose} is not valid base64") from None
        if not blob.startswith(_VERSION):
            raise CryptoError(f"sealed {purpose} has an unknown format")
        nonce, ct = blob[2 : 2 + _NONCE], blob[2 + _NONCE :]
        try:
            return AESGCM(self._subkey("seal")).decrypt(nonce, ct, purpose.encode())
        except InvalidTag:
            raise CryptoError(
                f"sealed {purpose} does not open with this key-encryption key",
                hint="the data dir's keys/kek does not match the database",
            ) from None

    def passphrase(self, purpose: str) -> bytes:
        """A passphrase for PEM-encrypting one private key."""
        return base64.b64encode(self._subkey(f"pem:{purpose}"))
