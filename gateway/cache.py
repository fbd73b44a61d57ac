"""The in-process answer cache and the TTL policy every backend shares.

Only resolver *outcomes* are cached, never rendered answers: an answer echoes per-request strings
(``inquiryRequestId``) and must be rendered for each request anyway.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime
from typing import Generic, TypeVar

from .config import CacheSettings
from .snap.models import Bill, BillStatus, Outcome

__all__ = ["TTLCache", "ttl_for"]

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """A bounded LRU map whose entries also expire; not thread-safe (one event loop)."""

    __slots__ = ("_clock", "_data", "max_entries")

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._clock = time.monotonic

    def get(self, key: K) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry[1]

    def set(self, key: K, value: V, ttl: float) -> None:
        data = self._data
        data[key] = (self._clock() + ttl, value)
        data.move_to_end(key)
        while len(data) > self.max_entries:
            data.popitem(last=False)

    def pop(self, key: K) -> V | None:
        entry = self._data.pop(key, None)
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        return len(self._data)


def ttl_for(outcome: Outcome, settings: CacheSettings, now: float | None = None) -> float:
    """Seconds ``outcome`` may be reused; ``0`` means do not cache.

    A bill lives min(resolver hint, ``bill_ttl``) and never past its own expiry; not-found is
    cached briefly (the merchant may be creating the bill right now); paid and expired longer.
    """
    if isinstance(outcome, Bill):
        ttl = settings.bill_ttl
        if outcome.cache_ttl is not None:
            ttl = min(ttl, max(outcome.cache_ttl, 0.0))
        if outcome.expires_at is not None:
            moment = time.time() if now is None else now
            ttl = min(ttl, _seconds_until(outcome.expires_at, moment))
        return max(ttl, 0.0)
    if outcome is BillStatus.NOT_FOUND:
        return settings.not_found_ttl
    return settings.final_ttl


def _seconds_until(moment: datetime, now: float) -> float:
    return moment.timestamp() - now
