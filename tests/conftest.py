from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.snap.keys import generate_private_key
from gateway.testing import FakeDoku, create_fake_doku

from .support import Keys, RedisServer, running_server, start_redis

DATA = Path(__file__).parent / "data"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    """The known-answer vectors of spec §15 (a copy of ../shared/spec/vectors.json)."""
    loaded: dict[str, Any] = json.loads((DATA / "vectors.json").read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="session")
def keys() -> Keys:
    """Real RSA-2048 keys for DOKU's side and the merchant's side, made once per session."""
    return Keys(doku=generate_private_key(), merchant=generate_private_key())


@pytest.fixture
def fake(keys: Keys) -> FakeDoku:
    """DOKU's API as the merchant's client sees it (gateway.testing), verifying signatures."""
    return create_fake_doku(keys.client_id, keys.client_secret, keys.merchant.public_key())


@pytest.fixture
def url(fake: FakeDoku) -> Iterator[str]:
    """The fake DOKU served by a real uvicorn on a free loopback port."""
    with running_server(fake.app) as base:
        yield base
        fake.stall_seconds = 0  # release any stalled request so the server stops at once


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, stopped after the test."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()
