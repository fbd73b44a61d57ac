"""Redis failures, handled in one place for every Redis backend.

:data:`REDIS_ERRORS` is what a failed or timed-out command raises. A :class:`Breaker` stops
sending commands for ``retry_interval`` after one fails, so a dead Redis costs the request path
nothing, and finds out that Redis is back by a background probe (``PING`` every interval) rather
than by sacrificing a request to the fallback. It logs once per transition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

__all__ = ["REDIS_ERRORS", "Breaker"]

#: What a Redis command raises when Redis is down, slow, failing over or refusing.
REDIS_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, RedisError, OSError)


class Breaker:
    """Open after a failure; closed again when a probe (``probe()``) succeeds.

    ``on_change(up)`` runs at every transition (metrics, the log line).
    """

    def __init__(
        self,
        probe: Callable[[], Awaitable[Any]],
        retry_interval: float,
        logger: logging.Logger,
        what: str,
        on_change: Callable[[bool], None] = lambda up: None,
    ) -> None:
        self._probe = probe
        self._interval = max(retry_interval, 0.01)
        self._log = logger
        self._what = what
        self._on_change = on_change
        self.up = True
        self._task: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        """Whether commands should skip Redis right now."""
        return not self.up

    def failed(self, exc: BaseException) -> None:
        """A command failed: open, and start probing until Redis answers again."""
        if not self.up:
            return
        self.up = False
        self._on_change(False)
        self._log.warning(
            "Redis unavailable (%s: %s); %s until it returns",
            type(exc).__name__,
            str(exc)[:200],
            self._what,
        )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nothing to probe from (a synchronous caller)
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._probe_until_up())

    def recovered(self) -> None:
        if self.up:
            return
        self.up = True
        self._on_change(True)
        self._log.warning("Redis is reachable again; %s no more", self._what)

    async def _probe_until_up(self) -> None:
        while not self.up:
            await asyncio.sleep(self._interval)
            started = time.monotonic()
            try:
                await self._probe()
            except REDIS_ERRORS:
                continue
            except Exception:  # a probe must never kill the breaker
                self._log.debug("Redis probe failed", exc_info=True)
                continue
            self._log.debug("Redis probe answered in %.3fs", time.monotonic() - started)
            self.recovered()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
