"""Running uvicorn with a drain on SIGTERM: ``/readyz`` turns 503 at once, requests are still
served for ``http.shutdown_delay`` seconds while the load balancer takes the pod out, then
uvicorn stops accepting, lets in-flight requests finish, and the process exits."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

from ..log import get_logger

__all__ = ["DrainingServer"]

_log = get_logger("serve")

# Young objects the collector lets pile up before it walks them (CPython's default is 700). A
# request in flight holds a few hundred objects; at 700 the collector ran several times a
# millisecond under load, and each run promoted the in-flight requests' objects to the older
# generations, which full collections then walk again. The garbage of a request is freed by
# reference counting; a larger young generation costs a few MB at most.
GC_YOUNG_THRESHOLD = 20_000
# Seconds a thread that wants the interpreter waits before the event loop is made to let go of
# it (CPython's default is 5 ms). The payment journal's writer thread takes the interpreter
# back after each system call (write, fsync) while the loop is busy with requests: at 5 ms a
# batch's write took 1.6 ms at the median and 7 ms at p99, and every acknowledgement in the
# batch waited for it; at 0.2 ms, 0.9 and 3.2 ms (journal p99 17 → 12 ms). The loop's own
# cost is a switch when a thread asks, which only the journal and the ledger's threads do.
SWITCH_INTERVAL = 0.0002
# Seconds between collections of the young generation made by the clock, beside those the
# allocation count starts. CPython counts only fresh allocations: tuples taken from its free
# list enter the young generation uncounted, and the state's and the journal's entries are such
# tuples, kept for hours. After a burst of misses 600 000 of them had piled up between two
# counted collections, and the collection that finally walked them held the loop 200-800 ms.
# Collected ten times a second, the pile stays at a few thousand (about a millisecond).
GC_YOUNG_PERIOD = 0.1


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM starts a drain instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, on_drain: Callable[[], None], delay: float) -> None:
        super().__init__(config)
        self.on_drain = on_drain
        self.delay = delay
        self._stop_at: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        tune_interpreter()
        collect_young_periodically(asyncio.get_running_loop(), GC_YOUNG_PERIOD)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._stop_at is None and not self.should_exit:
            # Runs in the signal handler: only flags and a deadline, checked by on_tick.
            self.on_drain()
            self._stop_at = time.monotonic() + self.delay
            _log.info("SIGTERM: /readyz answers 503; stopping in %.1f s", self.delay)
            if self.delay > 0:
                return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        return await super().on_tick(counter)


def collect_young_periodically(loop: asyncio.AbstractEventLoop, period: float) -> None:
    """Collect the young generation every ``period`` seconds on ``loop`` (see
    :data:`GC_YOUNG_PERIOD`); the chain ends with the loop."""

    def collect() -> None:
        gc.collect(0)
        loop.call_later(period, collect)

    loop.call_later(period, collect)


def tune_interpreter() -> None:
    """Once the app is up (its lifespan has frozen what start-up made): the young generation
    may grow to :data:`GC_YOUNG_THRESHOLD` objects, and threads wait at most
    :data:`SWITCH_INTERVAL` for the interpreter. Process settings, so ``serve`` makes them,
    not the app (an app embedded in another server leaves that server's interpreter alone)."""
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    sys.setswitchinterval(SWITCH_INTERVAL)
