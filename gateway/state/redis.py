"""Redis as the shared state of many gateway pods: answer cache, replay guard, single flight.

Redis must never become the single point of failure: every command has a timeout, and when Redis
is down, slow or failing over, this backend answers from an in-process :class:`MemoryState`
instead (inquiries keep being answered, the resolver is asked directly), logs once per
transition, sets ``doku_gateway_redis_up`` to 0 and counts errors. After a failure no request
goes to Redis; a background probe pings it every ``retry_interval`` seconds, so a dead Redis
costs nothing per request and a recovered one is used again, without a restart and without
sacrificing a request to find out (``gateway._redis.breaker``).

Keys (``prefix`` defaults to ``doku-gateway:``; ``v1`` is the format version)::

    {prefix}v1:r:{endpoint}:{partner}:{day}:{external id}   replay claim / stored answer
    {prefix}v1:{{payment code}}:a                           cached outcome (codec.py)
    {prefix}v1:{{payment code}}:l                           single-flight lock

The payment-code keys share a hash tag so that, on Redis Cluster, the answer and its lock live in
one slot.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from .._redis.batch import Batcher
from .._redis.breaker import REDIS_ERRORS, Breaker
from .._redis.connect import connect
from .._redis.keys import FORMAT_VERSION
from .._redis.scripts import script, script_sha
from ..config import CacheSettings
from ..log import get_logger
from ..metrics import Metrics
from ..snap.models import BillStatus, Outcome
from .base import Begin, Claim, StateBackend, StoredAnswer
from .codec import Decoded, encode_outcome
from .memory import MemoryState

_log = get_logger("redis")
T = TypeVar("T")


_PAID = encode_outcome(BillStatus.ALREADY_PAID)
_PENDING = b"P"
_DONE = b"D"
_HIT = b"H"
_FP = 64  # hex SHA-256 fingerprint length
_POLL = 0.02


class RedisState(StateBackend):
    """:class:`~gateway.state.base.StateBackend` on Redis, degrading to memory when Redis fails."""

    def __init__(
        self,
        client: Any,
        settings: CacheSettings,
        metrics: Metrics,
        *,
        cluster: bool = False,
        others: tuple[Any, ...] = (),
    ) -> None:
        self._redis = client
        self._others = others
        self._cluster = cluster
        self._prefix = f"{settings.prefix}{FORMAT_VERSION}:"
        self._fallback = MemoryState(settings.max_entries, settings.replay_max_entries)
        self._metrics = metrics
        self._breaker = Breaker(
            client.ping,
            settings.redis_retry_interval,
            _log,
            "answering from the in-process cache and replay guard",
            on_change=lambda up: metrics.redis_up.set(1 if up else 0),
        )
        # Cluster pipelines split by slot; there, commands go one by one.
        self._batch = None if cluster else Batcher(client, settings.redis_command_timeout)
        self._begin_sha = script_sha("begin")
        self._unlock_sha = script_sha("unlock")
        self._paid_sha = script_sha("paid")
        self._forget_paid_sha = script_sha("forget_paid")
        self._settle_sha = script_sha("settle")
        self._unlock = client.register_script(script("unlock"))
        self._locks: dict[str, bytes] = {}
        # Lock tokens: unique (a random prefix per process, a counter), not secret; one
        # getrandom call per process instead of one per cache miss.
        self._token_prefix = secrets.token_hex(8).encode() + b"-"
        self._token_count = itertools.count()
        self._decoded = Decoded()
        self._tasks: set[asyncio.Task[None]] = set()
        metrics.redis_up.set(1)

    @classmethod
    def from_settings(cls, settings: CacheSettings, metrics: Metrics) -> RedisState:
        client, cluster, others = connect(settings)
        return cls(client, settings, metrics, cluster=cluster, others=others)

    # -- keys -----------------------------------------------------------------------------------

    def _replay_key(self, key: str) -> str:
        return f"{self._prefix}r:{key}"

    def _answer_key(self, code: str) -> str:
        return f"{self._prefix}{{{code}}}:a"

    def _lock_key(self, code: str) -> str:
        return f"{self._prefix}{{{code}}}:l"

    # -- health ---------------------------------------------------------------------------------

    async def _run(
        self, operation: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        if self._breaker.open:
            return await fallback()
        try:
            return await operation()
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return await fallback()

    def _failed(self, exc: BaseException) -> None:
        self._metrics.redis_errors.inc()
        self._breaker.failed(exc)

    # -- replay guard ---------------------------------------------------------------------------

    async def begin(
        self,
        replay_key: str,
        fingerprint: str,
        replay_ttl: float,
        cache_key: str | None,
        lock_ttl: float = 0.0,
    ) -> Begin:
        # The hot path, so _run()'s logic is spelled out here without its closures.
        if self._breaker.open:
            return await self._fallback.begin(
                replay_key, fingerprint, replay_ttl, cache_key, lock_ttl
            )
        try:
            return await self._begin(replay_key, fingerprint, replay_ttl, cache_key, lock_ttl)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return await self._fallback.begin(
                replay_key, fingerprint, replay_ttl, cache_key, lock_ttl
            )

    async def _begin(
        self,
        replay_key: str,
        fingerprint: str,
        replay_ttl: float,
        cache_key: str | None,
        lock_ttl: float,
    ) -> Begin:
        key = self._replay_key(replay_key)
        claim = _PENDING + fingerprint.encode()
        ttl_ms = max(int(replay_ttl * 1000), 1)
        if self._batch is not None:
            keys = [key]
            args: list[Any] = [claim, ttl_ms, _HIT + fingerprint.encode()]
            token = b""
            if cache_key is not None:
                keys.append(self._answer_key(cache_key))
                if lock_ttl > 0:
                    token = self._token()
                    keys.append(self._lock_key(cache_key))
                    args += [token, max(int(lock_ttl * 1000), 1)]
            reply = await self._batch.script(self._begin_sha, script("begin"), keys, args)
            if reply[0]:
                return self._decode_claim(reply[1], fingerprint)
            cached = self._decode_cached(reply[1])
            locked = len(reply) > 2 and bool(reply[2])
            if locked:
                self._locks[cache_key or ""] = token
            return Begin(Claim.NEW, cached=cached, stored=cached is not None, locked=locked)
        # Cluster: the replay and answer keys live in different slots; send both at once.
        claimed, raw = await asyncio.gather(
            self._redis.set(key, claim, px=ttl_ms, nx=True),
            self._redis.get(self._answer_key(cache_key)) if cache_key else _none(),
        )
        if not claimed:
            return self._decode_claim(await self._redis.get(key), fingerprint)
        cached = self._decode_cached(raw)
        locked = False
        if cache_key is not None and cached is None and lock_ttl > 0:
            locked = await self.acquire(cache_key, lock_ttl)
        return Begin(Claim.NEW, cached=cached, locked=locked)

    async def finish(
        self, replay_key: str, fingerprint: str, answer: StoredAnswer, replay_ttl: float
    ) -> None:
        # Not awaited by the request: the answer is already decided, and an identical retry that
        # arrives first waits for this write (see wait()). It rides in the next pipeline.
        value = _DONE + fingerprint.encode() + b"%03d" % answer.status + answer.body
        ttl_ms = max(int(replay_ttl * 1000), 1)
        key = self._replay_key(replay_key)
        if self._breaker.open:
            await self._fallback.finish(replay_key, fingerprint, answer, replay_ttl)
        elif self._batch is not None:
            self._batch.fire("SET", key, value, "PX", ttl_ms, on_error=self._failed)
        else:
            task = asyncio.create_task(self._finish(key, value, ttl_ms))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _finish(self, key: str, value: bytes, ttl_ms: int) -> None:
        try:
            await self._redis.set(key, value, px=ttl_ms)
        except REDIS_ERRORS as exc:
            self._failed(exc)

    async def release(self, replay_key: str) -> None:
        async def remote() -> None:
            await self._redis.delete(self._replay_key(replay_key))

        await self._run(remote, lambda: self._fallback.release(replay_key))

    async def wait(self, replay_key: str, timeout: float) -> StoredAnswer | None:
        deadline = time.monotonic() + timeout
        key = self._replay_key(replay_key)

        async def remote() -> StoredAnswer | None:
            while time.monotonic() < deadline:
                value = await self._redis.get(key)
                if value is None:
                    return None
                if value[:1] == _DONE:
                    return _decode_answer(value)
                await asyncio.sleep(_POLL)
            return None

        return await self._run(remote, lambda: self._fallback.wait(replay_key, timeout))

    # -- answer cache ---------------------------------------------------------------------------

    async def _command(self, *command: Any) -> Any:
        """One command, in the next pipeline when there is one (cluster: on its own)."""
        if self._batch is not None:
            return await self._batch.submit(*command)
        return await self._redis.execute_command(*command)

    async def get(self, cache_key: str) -> Outcome | None:
        async def remote() -> Outcome | None:
            return self._decode_cached(await self._command("GET", self._answer_key(cache_key)))

        return await self._run(remote, lambda: self._fallback.get(cache_key))

    async def put(self, cache_key: str, outcome: Outcome, ttl: float) -> None:
        if ttl <= 0:
            return

        async def remote() -> None:
            await self._command(
                "SET",
                self._answer_key(cache_key),
                encode_outcome(outcome),
                "PX",
                max(int(ttl * 1000), 1),
            )

        await self._run(remote, lambda: self._fallback.put(cache_key, outcome, ttl))

    async def invalidate(self, cache_key: str) -> None:
        async def remote() -> None:
            await self._command("DEL", self._answer_key(cache_key))

        await self._fallback.invalidate(cache_key)
        await self._run(remote, _none)

    # -- single flight --------------------------------------------------------------------------

    def _token(self) -> bytes:
        return self._token_prefix + b"%d" % next(self._token_count)

    async def acquire(self, cache_key: str, ttl: float) -> bool:
        token = self._token()

        async def remote() -> bool:
            taken = await self._redis.set(
                self._lock_key(cache_key), token, px=max(int(ttl * 1000), 1), nx=True
            )
            if taken:
                self._locks[cache_key] = token
            return bool(taken)

        return await self._run(remote, lambda: self._fallback.acquire(cache_key, ttl))

    async def unlock(self, cache_key: str) -> None:
        token = self._locks.pop(cache_key, None)
        if token is None:
            return

        async def remote() -> None:
            await self._unlock(keys=[self._lock_key(cache_key)], args=[token])

        await self._run(remote, _none)

    async def mark_paid(self, cache_key: str, payment_closed: bool, ttl: float) -> None:
        if self._batch is None or self._breaker.open:
            await super().mark_paid(cache_key, payment_closed, ttl)
            return
        # Fired: the payment is journaled, and the ack must not wait for the cache.
        self._batch.fire_script(
            self._paid_sha,
            script("paid"),
            [self._answer_key(cache_key)],
            [_PAID, max(int(ttl * 1000), 1), b"1" if payment_closed else b"0"],
            on_error=self._failed,
        )

    async def forget_paid(self, cache_key: str) -> None:
        if self._batch is None or self._breaker.open:
            await super().forget_paid(cache_key)
            return
        await self._fallback.forget_paid(cache_key)
        # Fired: the delivery is recorded, and nothing waits on the cache.
        self._batch.fire_script(
            self._forget_paid_sha,
            script("forget_paid"),
            [self._answer_key(cache_key)],
            [],
            on_error=self._failed,
        )

    async def settle(self, cache_key: str, outcome: Outcome | None, ttl: float) -> None:
        # Fired in the next pipeline, not awaited: the answer is decided, and whoever waits for
        # it (another pod's single flight) polls until it lands. The answer goes first, so the
        # lock never disappears before the answer is readable.
        if self._batch is None or self._breaker.open:
            await super().settle(cache_key, outcome, ttl)
            return
        cached = outcome is not None and ttl > 0
        token = self._locks.pop(cache_key, None)
        if not cached and token is None:
            return
        self._batch.fire_script(
            self._settle_sha,
            script("settle"),
            [self._answer_key(cache_key), self._lock_key(cache_key)],
            [
                encode_outcome(outcome) if outcome is not None and cached else b"",
                max(int(ttl * 1000), 1),
                token or b"",
            ],
            on_error=self._failed,
        )

    async def await_answer(self, cache_key: str, timeout: float) -> Outcome | None:
        deadline = time.monotonic() + timeout
        answer_key, lock_key = self._answer_key(cache_key), self._lock_key(cache_key)

        async def remote() -> Outcome | None:
            while time.monotonic() < deadline:
                value, lock = await self._redis.mget(answer_key, lock_key)
                if value is not None:
                    return self._decode_cached(value)
                if lock is None:
                    return None
                await asyncio.sleep(_POLL)
            return None

        return await self._run(remote, lambda: self._fallback.await_answer(cache_key, timeout))

    # -- lifecycle ------------------------------------------------------------------------------

    async def purge(self, codes: list[str]) -> int:
        """Delete the cached answers of ``codes``; returns how many existed (for the CLI)."""
        if not codes:
            return 0
        removed = 0
        for code in codes:
            removed += int(await self._redis.delete(self._answer_key(code)))
        return removed

    @property
    def batcher(self) -> Batcher | None:
        """The pipeline this backend's commands ride in (None on a cluster): others writing to
        the same Redis on the request path may share it (the inquiry ledger)."""
        return self._batch

    async def close(self) -> None:
        # Drained first: a fired command failing now must not start a probe after the breaker
        # was closed.
        if self._batch is not None:
            await self._batch.drain()
        await self._breaker.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()
        for other in self._others:
            await other.aclose()

    def status(self) -> Mapping[str, Any]:
        up = self._breaker.up
        return {"backend": "redis", "ok": up, "degraded": not up}

    def _decode_cached(self, value: bytes | None) -> Outcome | None:
        if value is None:
            return None
        try:
            return self._decoded(value)
        except ValueError:
            _log.warning("ignoring an undecodable cache entry")
            return None

    def _decode_claim(self, value: bytes | None, fingerprint: str) -> Begin:
        if value is None:  # gone between two commands (cluster path): let the caller re-claim
            return Begin(Claim.PENDING)
        if value[1 : 1 + _FP].decode("ascii", "replace") != fingerprint:
            return Begin(Claim.CONFLICT)
        kind = value[:1]
        if kind == _DONE:
            return Begin(Claim.REPLAY, answer=_decode_answer(value))
        if kind == _HIT:
            cached = self._decode_cached(value[1 + _FP :])
            if cached is not None:
                return Begin(Claim.RENDER, cached=cached, stored=True)
        return Begin(Claim.PENDING)


async def _none() -> None:
    return None


def _decode_answer(value: bytes) -> StoredAnswer:
    start = 1 + _FP
    return StoredAnswer(int(value[start : start + 3]), bytes(value[start + 3 :]))
