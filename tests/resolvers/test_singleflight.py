from __future__ import annotations

import asyncio
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest

from gateway import Bill, BillStatus, Inquiry, ResolverUnavailable
from gateway.config import CacheSettings
from gateway.resolvers.dispatch import ResolverSet
from gateway.resolvers.singleflight import Fetcher
from gateway.state.memory import MemoryState

pytestmark = pytest.mark.anyio


def inquiry(code: str = "8889900001234") -> Inquiry:
    return Inquiry(
        "   88899", code[5:], "   88899" + code[5:], code, "r", "C", MappingProxyType({})
    )


class Slow:
    def __init__(self, outcome: Any, delay: float = 0.05) -> None:
        self.outcome, self.delay, self.calls = outcome, delay, 0

    async def resolve(self, inquiry: Inquiry) -> Any:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


async def test_one_call_per_payment_code_and_cached() -> None:
    slow = Slow(Bill(name="A", amount=Decimal("1.00")))
    state = MemoryState()
    resolvers = ResolverSet.single(slow)
    fetcher = Fetcher(resolvers, state, CacheSettings())
    route = resolvers.routes[0]
    results = await asyncio.gather(
        *(fetcher.fetch(route, inquiry()) for _ in range(20)),
        fetcher.fetch(route, inquiry("8889900009999")),
    )
    assert slow.calls == 2
    assert all(isinstance(r, Bill) for r in results)
    assert await state.get("8889900001234") == results[0]


async def test_failures_are_shared_and_not_cached() -> None:
    slow = Slow(ResolverUnavailable("down"))
    state = MemoryState()
    resolvers = ResolverSet.single(slow)
    fetcher = Fetcher(resolvers, state, CacheSettings())
    results = await asyncio.gather(
        *(fetcher.fetch(resolvers.routes[0], inquiry()) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ResolverUnavailable) for r in results)
    assert slow.calls == 1
    assert await state.get("8889900001234") is None


async def test_not_found_is_cached_briefly() -> None:
    state = MemoryState()
    resolvers = ResolverSet.single(Slow(BillStatus.NOT_FOUND, 0))
    await Fetcher(resolvers, state, CacheSettings(not_found_ttl=5)).fetch(
        resolvers.routes[0], inquiry()
    )
    assert await state.get("8889900001234") is BillStatus.NOT_FOUND
