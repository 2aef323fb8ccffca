"""Garrison's dedicated log store: durable append-only streams with tamper-evident integrity.

Plain Python, no Django. Each stream is a directory of segments: one active ``.log`` file of
framed records (fsynced before an append is acknowledged) and sealed ``.seg`` files (zstd blocks
with an RFC 6962 Merkle root). Signed, chained digests (Ed25519) cover every sealed segment and,
hourly, the active one, so `verify` can name what was modified, deleted, reordered or inserted.
"""

from garrison.logstore.store import Record, Store

__all__ = ["Record", "Store"]
