"""redis."""

from __future__ import annotations

import time
from typing import Any

from ..._redis.keys import FORMAT_VERSION
from ...config import CacheSettings
from ...log import get_logger
from .base import LedgerEntry

_log = get_logger("ledger")


# -- Redis backend --------------------------------------------------------------------------------

# Newest inquiry wins; an equal answered_at replaces (that is the reconciler noting a check).
_RECORD = """
local current = redis.call('ZSCORE', KEYS[2], ARGV[1])
if current and tonumber(current) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""
_SETTLE = """
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[1])
"""


class RedisLedger:
    """The ledger in Redis, shared by every pod; one round trip per record or settle.

    After a failed record, records are skipped for ``retry_interval`` seconds, so a dead Redis
    costs the inquiry path nothing more than the one failure.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        *,
        retry_interval: float = 1.0,
        others: tuple[Any, ...] = (),
    ) -> None:
        self._redis = client
        self._others = others
        base = f"{prefix}{FORMAT_VERSION}:{{pay}}:ledger:"
        self._keys = [f"{base}entries", f"{base}answered"]
        self._record = client.register_script(_RECORD)
        self._settle = client.register_script(_SETTLE)
        self._retry_interval = retry_interval
        self._down_until = 0.0

    @classmethod
    def from_settings(cls, cache: CacheSettings) -> RedisLedger:
        from ..._redis.connect import connect

        client, _, others = connect(cache)
        return cls(client, cache.prefix, retry_interval=cache.redis_retry_interval, others=others)

    async def record(self, entry: LedgerEntry) -> None:
        if time.monotonic() < self._down_until:
            return
        try:
            await self._record(
                keys=self._keys, args=[entry.payment_code, entry.answered_at, entry.encode()]
            )
        except Exception as exc:  # a hint must never fail the inquiry that records it
            self._down_until = time.monotonic() + self._retry_interval
            _log.warning(
                "inquiry ledger not written (%s); VAs answered in the next %.1fs are not "
                "recorded for reconciliation",
                type(exc).__name__,
                self._retry_interval,
            )

    async def due(self, older_than: float, newer_than: float, limit: int) -> list[LedgerEntry]:
        if limit <= 0:
            return []
        entries_key, answered_key = self._keys
        codes = await self._redis.zrangebyscore(
            answered_key, newer_than, older_than, start=0, num=limit
        )
        if not codes:
            return []
        values = await self._redis.hmget(entries_key, codes)
        # A code settled between the two commands has no entry any more: skip it.
        return [LedgerEntry.decode(value) for value in values if value is not None]

    async def settle(self, payment_code: str) -> None:
        await self._settle(keys=self._keys, args=[payment_code])

    async def close(self) -> None:
        await self._redis.aclose()
        for other in self._others:
            await other.aclose()
