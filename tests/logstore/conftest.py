"""Fixtures for the log store tests: signing keys and stores on throw-away directories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.logstore.digests import Signer
from garrison.logstore.store import Store, StoreConfig
from tests.logstore.helpers import KEY_FILE, PASSPHRASE, new_signer


@pytest.fixture(scope="session")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PEM file of the store's signing key (for writer processes)."""
    directory = tmp_path_factory.mktemp("keys")
    new_signer(directory)
    return directory / KEY_FILE


@pytest.fixture(scope="session")
def signer(key_path: Path) -> Signer:
    """The store's signing key."""
    return Signer.load_or_create(key_path, PASSPHRASE)


@pytest.fixture(scope="session")
def other_signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    """A second, unrelated signing key (an attacker's)."""
    return new_signer(tmp_path_factory.mktemp("other-keys"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Directory of a store."""
    return tmp_path / "logstore"


@pytest.fixture
def open_store(root: Path, signer: Signer) -> Iterator[Callable[..., Store]]:
    """Open a store on `root` with StoreConfig(**kwargs); every one is closed at the end."""
    opened: list[Store] = []

    def factory(**config: Any) -> Store:
        store = Store(root, signer=signer, config=StoreConfig(**config))
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
