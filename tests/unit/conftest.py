"""Shared fixtures for the unit tests.

``backend`` yields a started storage :class:`~extserver.storage.interface.Backend` of every
kind listed in ``BACKEND_KINDS``; the contract tests in ``test_storage_contract.py`` run
against each. To add a backend, append its kind to ``BACKEND_KINDS`` and a branch to
:func:`make_backend`.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import AsyncIterator

import pytest

from extserver.storage.interface import Backend

BACKEND_KINDS = ["embedded", "etcd3"]


async def make_backend(kind: str, tmp_path: Path) -> Backend:
    """Build and start a fresh backend of ``kind`` whose files live under ``tmp_path``."""
    if kind == "embedded":
        from extserver.storage.embedded import EmbeddedBackend

        backend: Backend = EmbeddedBackend(tmp_path / "store", sync="normal")
    elif kind == "etcd3":
        from tests.etcd_cluster import etcd_backend

        backend = await etcd_backend(tmp_path / "etcd")
    else:
        raise ValueError(f"unknown backend kind {kind!r}")
    await backend.start()
    return backend


@pytest.fixture(params=BACKEND_KINDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    b = await make_backend(request.param, tmp_path)
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def keyspace() -> str:
    """A key prefix no other test uses, so the contract also holds on a shared server."""
    return f"/contract/{uuid.uuid4().hex[:12]}/"
