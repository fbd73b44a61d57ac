"""The inquiry ledger in Redis, shared by every pod: ``{prefix}v1:{pay}:ledger:entries`` (hash,
payment code → entry) and ``{prefix}v1:{pay}:ledger:answered`` (sorted set by answer time), in the
payment journal's hash tag."""

from __future__ import annotations

from typing import Any

from ..._redis.breaker import Breaker
from ..._redis.keys import FORMAT_VERSION
from ..._redis.scripts import script
from ...config import CacheSettings
from ...log import get_logger
from .base import InquiryLedger, LedgerEntry

_log = get_logger("ledger")


# -- Redis backend --------------------------------------------------------------------------------


class RedisLedger(InquiryLedger):
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
        self._record = client.register_script(script("ledger_record"))
        self._settle = client.register_script(script("ledger_settle"))
        self._breaker = Breaker(
            client.ping,
            retry_interval,
            _log,
            "inquiry ledger not written (VAs answered meanwhile are not reconciled)",
        )

    @classmethod
    def from_settings(cls, cache: CacheSettings) -> RedisLedger:
        from ..._redis.connect import connect

        client, _, others = connect(cache)
        return cls(client, cache.prefix, retry_interval=cache.redis_retry_interval, others=others)

    async def record(self, entry: LedgerEntry) -> None:
        if self._breaker.open:
            return
        try:
            await self._record(
                keys=self._keys, args=[entry.payment_code, entry.answered_at, entry.encode()]
            )
        except Exception as exc:  # a hint must never fail the inquiry that records it
            self._breaker.failed(exc)

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
        await self._breaker.close()
        await self._redis.aclose()
        for other in self._others:
            await other.aclose()
