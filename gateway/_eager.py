"""Run a coroutine's first step at once, and arm a timer only if the coroutine waits.

Most awaits on the hot paths finish without waiting: the request body is already in uvicorn's
buffer when the handler asks for it; a resolver that answers from memory (the static-bills
plugin, a resolver's own cache, the demo) returns in its first step. Arming and cancelling a
timeout for them (a timer handle, a heap push, a lookup of the current task) cost more than
what they do. :func:`first_step` runs the first step directly: a coroutine that returns has
waited for nothing, so no deadline could have passed. One that suspends is handed back as an
awaitable that goes on exactly as ``await`` would (each yielded future to the task, what the
task sends or throws, cancellation included, back to the coroutine), for the caller to await
under its deadline, started at that moment: one step late, which no caller can notice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from types import CoroutineType
from typing import Any, Generic, TypeVar

__all__ = ["Done", "first_step", "within"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """A coroutine that returned in its first step."""

    value: T


def first_step(awaitable: Awaitable[T]) -> Done[T] | Awaitable[T]:
    """Run ``awaitable``'s first step: :class:`Done` if it returned, else the rest to await.

    What the first step raises propagates. Anything but a native coroutine is returned as is."""
    if not isinstance(awaitable, CoroutineType):
        return awaitable
    coroutine: Coroutine[Any, Any, T] = awaitable
    try:
        yielded = coroutine.send(None)
    except StopIteration as done:
        return Done(done.value)
    except BaseException:
        coroutine.close()
        raise
    return _Resumed(coroutine, yielded)


async def within(awaitable: Awaitable[T], timeout: float) -> T:
    """``await awaitable`` under ``timeout`` seconds (:class:`TimeoutError` when it passes),
    with no timer at all when it returns without waiting."""
    started = first_step(awaitable)
    if isinstance(started, Done):
        return started.value
    async with asyncio.timeout(timeout):
        return await started


class _Resumed(Awaitable[T]):
    """A coroutine that has already run its first step, suspended on ``yielded``."""

    __slots__ = ("_coroutine", "_yielded")

    def __init__(self, coroutine: Coroutine[Any, Any, T], yielded: Any) -> None:
        self._coroutine = coroutine
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine, value = self._coroutine, self._yielded
        step: Callable[[Any], Any]
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # thrown in by the task: a cancellation, a timeout
                step, argument = coroutine.throw, exc
            else:
                step, argument = coroutine.send, sent
            try:
                value = step(argument)
            except StopIteration as done:
                result: T = done.value
                return result
