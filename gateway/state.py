"""Shared request state: the X-EXTERNAL-ID replay guard and the answer cache, behind one
interface so a backend can serve a cache hit and its replay check in a single round trip.

:class:`MemoryState` is the embedded default; the Redis backend implements the same protocol.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from .cache import TTLCache
from .snap.models import Outcome

__all__ = ["Begin", "Claim", "MemoryState", "StateBackend", "StoredAnswer"]


# StoredAnswer and Begin are made once per request on the hot path: NamedTuples, which are
# immutable values like frozen dataclasses but several times cheaper to create.
class StoredAnswer(NamedTuple):
    """An answer exactly as sent, kept so an identical retry gets the same bytes."""

    status: int
    body: bytes


class Claim(enum.Enum):
    NEW = "new"  # first time this X-EXTERNAL-ID is seen today: go ahead
    REPLAY = "replay"  # identical request already answered: send the stored answer
    PENDING = "pending"  # identical request still in flight: wait for its answer
    CONFLICT = "conflict"  # same id, different request: 409
    # identical request first answered from a cached outcome the backend kept with the claim:
    # render that outcome again (Redis: saves storing every cache-hit answer separately)
    RENDER = "render"


class Begin(NamedTuple):
    claim: Claim
    answer: StoredAnswer | None = None
    cached: Outcome | None = None
    #: The backend already kept what an identical retry needs (the cached outcome, with the
    #: claim): ``finish`` is not needed for this request's answer.
    stored: bool = False


class StateBackend(Protocol):
    async def begin(
        self, replay_key: str, fingerprint: str, replay_ttl: float, cache_key: str | None
    ) -> Begin:
        """Claim ``replay_key`` for ``fingerprint``; on ``NEW`` also read ``cache_key``."""
        ...

    async def finish(
        self, replay_key: str, fingerprint: str, answer: StoredAnswer, replay_ttl: float
    ) -> None:
        """Store the answer for identical retries."""
        ...

    async def release(self, replay_key: str) -> None:
        """Forget a claim so the sender may retry (after a 5xx)."""
        ...

    async def wait(self, replay_key: str, timeout: float) -> StoredAnswer | None:
        """Wait up to ``timeout`` for the answer of a ``PENDING`` claim."""
        ...

    async def get(self, cache_key: str) -> Outcome | None: ...

    async def put(self, cache_key: str, outcome: Outcome, ttl: float) -> None: ...

    async def invalidate(self, cache_key: str) -> None: ...

    async def acquire(self, cache_key: str, ttl: float) -> bool:
        """Take the resolve lock for ``cache_key`` (cross-process single flight)."""
        ...

    async def unlock(self, cache_key: str) -> None: ...

    async def await_answer(self, cache_key: str, timeout: float) -> Outcome | None:
        """Wait for another process's answer; ``None`` once its lock is gone without one."""
        ...

    async def close(self) -> None: ...

    def status(self) -> Mapping[str, Any]:
        """Backend name and health, for ``/readyz``."""
        ...


class MemoryState:
    """In-process state for a single gateway process (no Redis needed).

    Replay entries are plain tuples ``(fingerprint, expires, answer)``: at thousands of inquiries
    a second the store holds hundreds of thousands of them, and tuples of immutable values are
    cheap to keep and invisible to the garbage collector. An :class:`asyncio.Event` exists only
    while an identical retry waits for a pending answer.
    """

    def __init__(self, max_answers: int = 100_000, max_replay_ids: int = 200_000) -> None:
        self._answers: TTLCache[str, Outcome] = TTLCache(max_answers)
        # (fingerprint, expires, status, body); status 0 while the answer is pending. Plain
        # tuples of atoms only, so the collector stops tracking them (a NamedTuple inside would
        # keep every entry tracked, and full collections would walk the whole day's ids).
        self._replay: OrderedDict[str, tuple[str, float, int, bytes]] = OrderedDict()
        self._waiters: dict[str, asyncio.Event] = {}
        self._max_replay = max_replay_ids

    async def begin(
        self, replay_key: str, fingerprint: str, replay_ttl: float, cache_key: str | None
    ) -> Begin:
        now = time.monotonic()
        entry = self._replay.get(replay_key)
        if entry is not None and entry[1] > now:
            if entry[0] != fingerprint:
                return Begin(Claim.CONFLICT)
            if entry[2]:
                return Begin(Claim.REPLAY, answer=StoredAnswer(entry[2], entry[3]))
            return Begin(Claim.PENDING)
        self._replay[replay_key] = (fingerprint, now + replay_ttl, 0, b"")
        if entry is not None:
            self._replay.move_to_end(replay_key)
        self._trim(now)
        cached = self._answers.get(cache_key) if cache_key is not None else None
        return Begin(Claim.NEW, cached=cached)

    async def finish(
        self, replay_key: str, fingerprint: str, answer: StoredAnswer, replay_ttl: float
    ) -> None:
        entry = self._replay.get(replay_key)
        if entry is None or entry[0] != fingerprint:
            return
        self._replay[replay_key] = (entry[0], entry[1], answer.status, answer.body)
        self._wake(replay_key)

    async def release(self, replay_key: str) -> None:
        self._replay.pop(replay_key, None)
        self._wake(replay_key)

    async def wait(self, replay_key: str, timeout: float) -> StoredAnswer | None:
        entry = self._replay.get(replay_key)
        if entry is None:
            return None
        if entry[2]:
            return StoredAnswer(entry[2], entry[3])
        event = self._waiters.setdefault(replay_key, asyncio.Event())
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return None
        entry = self._replay.get(replay_key)
        return None if entry is None or not entry[2] else StoredAnswer(entry[2], entry[3])

    def _wake(self, replay_key: str) -> None:
        event = self._waiters.pop(replay_key, None)
        if event is not None:
            event.set()

    async def get(self, cache_key: str) -> Outcome | None:
        return self._answers.get(cache_key)

    async def put(self, cache_key: str, outcome: Outcome, ttl: float) -> None:
        if ttl > 0:
            self._answers.set(cache_key, outcome, ttl)

    async def invalidate(self, cache_key: str) -> None:
        self._answers.pop(cache_key)

    async def acquire(self, cache_key: str, ttl: float) -> bool:
        # One process: the in-process single flight already lets one caller through.
        return True

    async def unlock(self, cache_key: str) -> None:
        return None

    async def await_answer(self, cache_key: str, timeout: float) -> Outcome | None:
        return self._answers.get(cache_key)

    async def close(self) -> None:
        return None

    def status(self) -> Mapping[str, Any]:
        return {
            "backend": "memory",
            "ok": True,
            "answers": len(self._answers),
            "replay_ids": len(self._replay),
        }

    def _trim(self, now: float) -> None:
        replay = self._replay
        while len(replay) > self._max_replay:
            replay.popitem(last=False)
        # Entries are in insertion order, so expired ones gather at the front.
        while replay:
            first = next(iter(replay.values()))
            if first[1] > now:
                break
            replay.popitem(last=False)
