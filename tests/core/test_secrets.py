"""Envelope encryption under the KEK: round trip, purpose binding, wrong key, file mode."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from garrison.core.errors import CryptoError
from garrison.core.secrets import KeyRing


def test_round_trip_and_purpose_binding(tmp_path: Path) -> None:
    """A sealed secret opens only with the same key and purpose."""
    ring = KeyRing.load_or_create(tmp_path / "kek")
    sealed = ring.seal(b"JBSWY3DPEHPK3PXP", purpose="totp-seed")
    assert b"JBSWY3DPEHPK3PXP" not in sealed.encode()
    assert ring.open(sealed, purpose="totp-seed") == b"JBSWY3DPEHPK3PXP"
    with pytest.raises(CryptoError, match="does not open"):
        ring.open(sealed, purpose="django-secret")
    other = KeyRing.load_or_create(tmp_path / "other")
    with pytest.raises(CryptoError, match="does not match"):
        other.open(sealed, purpose="totp-seed")


def test_kek_file_is_private_and_stable(tmp_path: Path) -> None:
    """The KEK is created 0600 once and read back unchanged."""
    path = tmp_path / "keys" / "kek"
    first = KeyRing.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = KeyRing.load_or_create(path)
    assert first.passphrase("ca") == second.passphrase("ca")


def test_missing_kek_is_explained(tmp_path: Path) -> None:
    """Opening a data dir without its KEK says what to do."""
    with pytest.raises(CryptoError, match="garrison pki init"):
        KeyRing.load(tmp_path / "kek")


def test_garbage_is_refused(tmp_path: Path) -> None:
    """Corrupted ciphertext is an error, never garbage plaintext."""
    ring = KeyRing.load_or_create(tmp_path / "kek")
    with pytest.raises(CryptoError):
        ring.open("not-base64!!", purpose="x")
    sealed = ring.seal(b"data", purpose="x")
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(CryptoError):
        ring.open(tampered, purpose="x")
