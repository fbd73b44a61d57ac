from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.snap.keys import generate_private_key

from .support import Keys, RedisServer, start_redis

DATA = Path(__file__).parent / "data"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    """The known-answer vectors of spec §15 (a copy of ../shared/spec/vectors.json)."""
    return json.loads((DATA / "vectors.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def keys() -> Keys:
    """Real RSA-2048 keys for DOKU's side and the merchant's side, made once per session."""
    return Keys(doku=generate_private_key(), merchant=generate_private_key())


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, stopped after the test."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()
