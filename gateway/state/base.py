"""The state interface: an X-EXTERNAL-ID replay guard and an answer cache behind one
backend, so a cache hit and its replay check can be one round trip."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..snap.models import Bill, BillStatus, Outcome


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
    #: On a miss with ``lock_ttl``: this request took the single-flight resolve lock in the same
    #: step (release it with ``settle`` or ``unlock``).
    locked: bool = False


class StateBackend(ABC):
    @abstractmethod
    async def begin(
        self,
        replay_key: str,
        fingerprint: str,
        replay_ttl: float,
        cache_key: str | None,
        lock_ttl: float = 0.0,
    ) -> Begin:
        """Claim ``replay_key`` for ``fingerprint``; on ``NEW`` also read ``cache_key`` and, when
        it is not cached and ``lock_ttl`` is given, try to take its resolve lock (one round
        trip for all three on Redis)."""
        ...

    @abstractmethod
    async def finish(
        self, replay_key: str, fingerprint: str, answer: StoredAnswer, replay_ttl: float
    ) -> None:
        """Store the answer for identical retries."""
        ...

    @abstractmethod
    async def release(self, replay_key: str) -> None:
        """Forget a claim so the sender may retry (after a 5xx)."""
        ...

    @abstractmethod
    async def wait(self, replay_key: str, timeout: float) -> StoredAnswer | None:
        """Wait up to ``timeout`` for the answer of a ``PENDING`` claim."""
        ...

    @abstractmethod
    async def get(self, cache_key: str) -> Outcome | None: ...

    @abstractmethod
    async def put(self, cache_key: str, outcome: Outcome, ttl: float) -> None: ...

    @abstractmethod
    async def invalidate(self, cache_key: str) -> None: ...

    @abstractmethod
    async def acquire(self, cache_key: str, ttl: float) -> bool:
        """Take the resolve lock for ``cache_key`` (cross-process single flight)."""
        ...

    @abstractmethod
    async def unlock(self, cache_key: str) -> None: ...

    async def mark_paid(self, cache_key: str, payment_closed: bool, ttl: float) -> None:
        """A payment of this VA was journaled: its cached answer must not offer the bill again.

        A reusable bill stays cached; a closed bill (or, when nothing is cached, a payment of a
        closed VA) is answered "already paid" for ``ttl`` until the merchant's hook has run; an
        open bill is forgotten, so the resolver decides again. Redis does this in one script,
        sent without waiting for it."""
        cached = await self.get(cache_key)
        if isinstance(cached, Bill) and cached.reusable:
            return
        closed = cached.trx_type == "C" if isinstance(cached, Bill) else payment_closed
        if closed:
            await self.put(cache_key, BillStatus.ALREADY_PAID, ttl)
        else:
            await self.invalidate(cache_key)

    async def forget_paid(self, cache_key: str) -> None:
        """The merchant's hook has recorded a payment of this VA: drop the cached answer (the
        "already paid" stand-in :meth:`mark_paid` left, or the bill) so that the resolver
        decides again, unless it is a reusable bill. Redis does this in one script, sent
        without waiting for it."""
        cached = await self.get(cache_key)
        if not (isinstance(cached, Bill) and cached.reusable):
            await self.invalidate(cache_key)

    async def settle(self, cache_key: str, outcome: Outcome | None, ttl: float) -> None:
        """After a resolve: cache ``outcome`` for ``ttl`` (if any) and release the lock. Redis
        sends both without waiting for the reply: the answer must not wait for them."""
        try:
            if outcome is not None and ttl > 0:
                await self.put(cache_key, outcome, ttl)
        finally:
            await self.unlock(cache_key)

    @abstractmethod
    async def await_answer(self, cache_key: str, timeout: float) -> Outcome | None:
        """Wait for another process's answer; ``None`` once its lock is gone without one."""
        ...

    @abstractmethod
    async def close(self) -> None: ...

    async def purge(self, codes: list[str]) -> int:
        """Forget the cached answers of ``codes`` (``cache purge``); how many existed."""
        removed = 0
        for code in codes:
            removed += await self.get(code) is not None
            await self.invalidate(code)
        return removed

    @abstractmethod
    def status(self) -> Mapping[str, Any]:
        """Backend name and health, for ``/readyz``."""
        ...
