"""The inquiry ledger in Redis, shared by every pod: ``{prefix}v1:{pay}:ledger:entries`` (hash,
payment code → entry) and ``{prefix}v1:{pay}:ledger:answered`` (sorted set by answer time), in the
payment journal's hash tag."""

from __future__ import annotations

from typing import Any

from ..._redis.batch import Batcher
from ..._redis.breaker import Breaker
from ..._redis.keys import FORMAT_VERSION
from ..._redis.scripts import script, script_sha
from ...config import CacheSettings
from ...log import get_logger
from .base import InquiryLedger, LedgerEntry

_log = get_logger("ledger")


# -- Redis backend --------------------------------------------------------------------------------


class RedisLedger(InquiryLedger):
    """The ledger in Redis, shared by every pod.

    The inquiry path calls ``note``, which does not wait: the script rides in the next pipeline
    (``due`` and ``settle`` first wait for what is queued). That pipeline is the state backend's
    when the gateway passes its ``batch`` (one round trip per turn of the loop for a cache miss's
    lookup and its note, not one each), else the ledger's own. After a failure, records are
    skipped until a background probe finds Redis again, so a dead Redis costs the inquiry path
    nothing.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        *,
        retry_interval: float = 1.0,
        others: tuple[Any, ...] = (),
        batch: Batcher | None = None,
    ) -> None:
        super().__init__()
        self._redis = client
        self._others = others
        base = f"{prefix}{FORMAT_VERSION}:{{pay}}:ledger:"
        self._keys = [f"{base}entries", f"{base}answered"]
        self._owns_batch = batch is None
        self._batch = Batcher(client, 5.0) if batch is None else batch
        self._record_sha = script_sha("ledger_record")
        self._settle_sha = script_sha("ledger_settle")
        self._settle = client.register_script(script("ledger_settle"))
        self._breaker = Breaker(
            client.ping,
            retry_interval,
            _log,
            "inquiry ledger not written (VAs answered meanwhile are not reconciled)",
        )

    @classmethod
    def from_settings(cls, cache: CacheSettings, batch: Batcher | None = None) -> RedisLedger:
        from ..._redis.connect import connect

        client, _, others = connect(cache)
        return cls(
            client,
            cache.prefix,
            retry_interval=cache.redis_retry_interval,
            others=others,
            batch=batch,
        )

    async def record(self, entry: LedgerEntry) -> None:
        if self._breaker.open:
            return
        try:
            await self._batch.script(
                self._record_sha, script("ledger_record"), self._keys, self._args(entry)
            )
        except Exception as exc:  # a hint must never fail the inquiry that records it
            self._breaker.failed(exc)

    def note(self, entry: LedgerEntry) -> None:
        if self._breaker.open:
            return
        self._batch.fire_script(
            self._record_sha,
            script("ledger_record"),
            self._keys,
            self._args(entry),
            on_error=self._breaker.failed,
        )

    def forget(self, payment_code: str) -> None:
        # On the same connection as the notes, after them: never before a note of this VA.
        if self._breaker.open:
            return
        self._batch.fire_script(
            self._settle_sha,
            script("ledger_settle"),
            self._keys,
            [payment_code],
            on_error=self._breaker.failed,
        )

    @staticmethod
    def _args(entry: LedgerEntry) -> list[object]:
        return [entry.payment_code, entry.answered_at, entry.encode()]

    async def due(self, older_than: float, newer_than: float, limit: int) -> list[LedgerEntry]:
        if limit <= 0:
            return []
        await self._batch.flush()
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
        await self._batch.flush()  # a record queued before must not land after the settle
        await self._settle(keys=self._keys, args=[payment_code])

    async def close(self) -> None:
        if self._owns_batch:
            await self._batch.drain()
        else:  # the state backend's: what the ledger queued is sent, the rest is its owner's
            await self._batch.flush()
        await self._breaker.close()
        await self._redis.aclose()
        for other in self._others:
            await other.aclose()
