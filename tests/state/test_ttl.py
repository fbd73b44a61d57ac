from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.config import CacheSettings
from gateway.snap.models import Bill, BillStatus
from gateway.state.memory import TTLCache
from gateway.state.ttl import ttl_for

SETTINGS = CacheSettings(bill_ttl=30, not_found_ttl=5, final_ttl=300)


def test_lru_evicts_least_recently_used() -> None:
    cache: TTLCache[str, int] = TTLCache(2)
    cache.set("a", 1, 60)
    cache.set("b", 2, 60)
    assert cache.get("a") == 1
    cache.set("c", 3, 60)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == (1, 3, 2)


def test_entries_expire() -> None:
    cache: TTLCache[str, int] = TTLCache(10)
    cache.set("a", 1, -0.001)
    assert cache.get("a") is None
    assert len(cache) == 0
    assert cache.pop("missing") is None


def test_ttl_policy() -> None:
    now = time.time()
    bill = Bill(name="A", amount=Decimal("1.00"))
    assert ttl_for(bill, SETTINGS, now) == 30
    assert ttl_for(Bill(name="A", amount=Decimal("1.00"), cache_ttl=3), SETTINGS, now) == 3
    assert ttl_for(Bill(name="A", amount=Decimal("1.00"), cache_ttl=999), SETTINGS, now) == 30
    assert ttl_for(Bill(name="A", amount=Decimal("1.00"), cache_ttl=0), SETTINGS, now) == 0
    soon = datetime.fromtimestamp(now, UTC) + timedelta(seconds=10)
    assert ttl_for(Bill(name="A", amount=Decimal("1.00"), expires_at=soon), SETTINGS, now) == (
        pytest.approx(10, abs=0.01)
    )
    past = datetime.fromtimestamp(now, UTC) - timedelta(seconds=10)
    assert ttl_for(Bill(name="A", amount=Decimal("1.00"), expires_at=past), SETTINGS, now) == 0
    assert ttl_for(BillStatus.NOT_FOUND, SETTINGS, now) == 5
    assert ttl_for(BillStatus.ALREADY_PAID, SETTINGS, now) == 300
    assert ttl_for(BillStatus.EXPIRED, SETTINGS, now) == 300
