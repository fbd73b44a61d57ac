"""One resolver call per payment code at a time, in this process and across pods.

Fifty inquiries for one uncached VA, spread over several gateway processes, must reach the
merchant's database once. Inside a process concurrent callers share one future; across processes
the state backend's lock lets one through while the others wait for its answer to appear in the
shared cache, bounded by the resolver timeout.
"""

from __future__ import annotations

import asyncio
import time

from ..config import CacheSettings
from ..exceptions import ResolverUnavailable
from ..snap.models import Inquiry, Outcome
from ..state.base import StateBackend
from ..state.ttl import ttl_for
from .dispatch import ResolverSet, Route

__all__ = ["Fetcher"]


class _Flight:
    """A resolve running in this process; its future exists only once a second caller waits
    (nearly every VA is inquired once: no future to make, resolve and retrieve for it)."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[Outcome] | None = None


class Fetcher:
    """Resolves cache misses through the single flight and caches what comes back."""

    def __init__(self, resolvers: ResolverSet, state: StateBackend, cache: CacheSettings) -> None:
        self.resolvers = resolvers
        self.state = state
        self.cache = cache
        self._inflight: dict[str, _Flight] = {}

    async def fetch(self, route: Route, inquiry: Inquiry, *, locked: bool = False) -> Outcome:
        """The outcome for ``inquiry``'s VA: from a resolve already running (here or, through
        the shared cache, in another process), or from the resolver. ``locked``: the caller took
        the resolve lock already (with its replay claim, in one round trip)."""
        key = inquiry.payment_code
        running = self._inflight.get(key)
        if running is not None:
            if locked:  # the lock had expired under a slow resolve here: give ours back
                await self.state.unlock(key)
            if running.future is None:
                running.future = asyncio.get_running_loop().create_future()
            return await asyncio.shield(running.future)
        flight = self._inflight[key] = _Flight()
        try:
            outcome = await self._fetch_shared(route, inquiry, locked)
        except BaseException as exc:
            if flight.future is not None:
                flight.future.set_exception(exc)
                flight.future.exception()  # retrieved: no "never retrieved" warning
            raise
        else:
            if flight.future is not None:
                flight.future.set_result(outcome)
            return outcome
        finally:
            del self._inflight[key]

    async def _fetch_shared(self, route: Route, inquiry: Inquiry, locked: bool) -> Outcome:
        key = inquiry.payment_code
        deadline = time.monotonic() + route.timeout
        while True:
            if locked or await self.state.acquire(key, route.timeout + 1.0):
                try:
                    outcome = await self.resolvers.resolve(route, inquiry)
                except BaseException:
                    await self.state.unlock(key)
                    raise
                await self.state.settle(key, outcome, ttl_for(outcome, self.cache))
                return outcome
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResolverUnavailable(
                    f"resolver {route.name}: timed out waiting for another process's answer"
                )
            answer = await self.state.await_answer(key, remaining)
            if answer is not None:
                return answer
            # The other process finished without a cacheable answer (or failed): try ourselves.
