from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from gateway.config import Settings
from gateway.doku.simulator import DokuSimulator
from gateway.web.app import create_app

from ...support import Keys, make_settings, running_server


@pytest.fixture
def settings(keys: Keys) -> Settings:
    return make_settings(keys)


@pytest.fixture
def simulator(keys: Keys) -> DokuSimulator:
    return DokuSimulator(keys.client_id, keys.client_secret, keys.doku)


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    """A real uvicorn server running the gateway with the demo resolver."""
    with running_server(create_app(settings)) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield http


@pytest.fixture
async def token(client: httpx.AsyncClient, simulator: DokuSimulator) -> str:
    return await simulator.get_token(client)
