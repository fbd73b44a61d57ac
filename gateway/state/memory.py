"""The embedded state backend: replay guard and answer cache in this process (no Redis)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from ..snap.models import Outcome
from .base import Begin, Claim, StateBackend, StoredAnswer
from .codec import Decoded, encode_outcome


class MemoryState(StateBackend):
    """In-process state for a single gateway process (no Redis needed).

    Replay entries are plain tuples ``(fingerprint, expires, answer)``: at thousands of inquiries
    a second the store holds hundreds of thousands of them, and tuples of immutable values are
    cheap to keep and invisible to the garbage collector. An :class:`asyncio.Event` exists only
    while an identical retry waits for a pending answer.
    """

    def __init__(self, max_answers: int = 100_000, max_replay_ids: int = 200_000) -> None:
        # Encoded outcomes: bytes are invisible to the garbage collector, so a full cache of
        # 100 000 bills costs a full collection nothing (as Bill objects it cost ~100 ms pauses).
        self._answers: TTLCache[str, bytes] = TTLCache(max_answers)
        self._decoded = Decoded()
        # (fingerprint, expires, status, body); status 0 while the answer is pending. Plain
        # tuples of atoms only, so the collector stops tracking them (a NamedTuple inside would
        # keep every entry tracked, and full collections would walk the whole day's ids).
        self._replay: OrderedDict[str, tuple[str, float, int, bytes]] = OrderedDict()
        self._waiters: dict[str, asyncio.Event] = {}
        self._max_replay = max_replay_ids

    async def begin(
        self,
        replay_key: str,
        fingerprint: str,
        replay_ttl: float,
        cache_key: str | None,
        lock_ttl: float = 0.0,
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
        cached = self._get(cache_key) if cache_key is not None else None
        # One process: the in-process single flight is the lock.
        return Begin(Claim.NEW, cached=cached, locked=cached is None and lock_ttl > 0)

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

    def _get(self, cache_key: str) -> Outcome | None:
        value = self._answers.get(cache_key)
        return None if value is None else self._decoded(value)

    async def get(self, cache_key: str) -> Outcome | None:
        return self._get(cache_key)

    async def put(self, cache_key: str, outcome: Outcome, ttl: float) -> None:
        if ttl > 0:
            self._answers.set(cache_key, encode_outcome(outcome), ttl)

    async def invalidate(self, cache_key: str) -> None:
        self._answers.pop(cache_key)

    async def acquire(self, cache_key: str, ttl: float) -> bool:
        # One process: the in-process single flight already lets one caller through.
        return True

    async def unlock(self, cache_key: str) -> None:
        return None

    async def await_answer(self, cache_key: str, timeout: float) -> Outcome | None:
        return self._get(cache_key)

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
