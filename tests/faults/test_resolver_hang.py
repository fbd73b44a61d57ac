"""A resolver that hangs for one VA only must cost that VA its answer, and nothing else."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from gateway.config import ResolverSettings
from gateway.doku.simulator import DokuSimulator, inquiry_body
from gateway.web.app import create_app

from ..support import Keys, make_settings, running_server

pytestmark = pytest.mark.anyio

PARTNER = "   88899"
STUCK = "8889900009999"


async def test_one_stuck_va_times_out_while_every_other_va_is_answered(
    keys: Keys, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.log"
    settings = make_settings(keys, inquiry={"resolver_timeout": 1.0})
    settings = settings.replace(
        resolvers=(
            ResolverSettings(
                "hanging",
                "tests.sample_resolvers:HangingResolver",
                (),
                default=True,
                options=MappingProxyType({"log": str(calls), "hang": "9999"}),
            ),
        )
    )
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            token = await simulator.get_token(http)

            async def inquire(code: str) -> tuple[httpx.Response, float]:
                request = simulator.inquiry_request(token, inquiry_body(code, PARTNER))
                started = time.monotonic()
                response = await simulator.send(http, request)
                return response, time.monotonic() - started

            # Eight inquiries (DOKU's retries, other banks) for the stuck VA, and forty for
            # other VAs, all at once.
            stuck = [inquire(STUCK) for _ in range(8)]
            others = [inquire(f"88899000{n:05d}") for n in range(40)]
            results = await asyncio.gather(*stuck, *others)

    stuck_results, other_results = results[:8], results[8:]
    for response, elapsed in stuck_results:
        assert response.status_code == 504
        assert response.json()["responseCode"] == "5042400"
        assert elapsed >= 1.0  # the resolver timeout ended them
    first_timeout = min(elapsed for _, elapsed in stuck_results)
    for response, elapsed in other_results:
        assert response.status_code == 200
        assert response.json()["responseCode"] == "2002400"
        # Every other VA was answered before the stuck one's timeout: none waited behind it.
        assert elapsed < first_timeout
    lines = calls.read_text().splitlines()
    # Single flight: the stuck VA reached the resolver once, not once per inquiry.
    assert sum(line.endswith(STUCK) for line in lines) == 1
    assert sum(not line.endswith(STUCK) for line in lines) == 40
