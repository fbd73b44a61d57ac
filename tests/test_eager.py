"""Tests of :mod:`gateway._eager`: a coroutine's first step run at once, a timer only if it waits.

A coroutine that returns in its first step must give its value with no timer armed; one that
suspends must go on exactly as ``await`` would (values, exceptions, cancellation, timeouts), and
the callers (:class:`ResolverSet`, :meth:`RawRequest.body`) must keep their deadlines.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Generator
from decimal import Decimal
from types import MappingProxyType
from typing import Any, TypeVar

import pytest

from gateway import BillStatus, Inquiry, ResolverUnavailable
from gateway._eager import Done, first_step, within
from gateway.resolvers.dispatch import ResolverSet
from gateway.snap.codes import Case
from gateway.snap.errors import SnapError
from gateway.snap.models import Bill, Outcome
from gateway.web.asgi import Deadlines, RawRequest

pytestmark = pytest.mark.anyio

T = TypeVar("T")

# A bound for anything that must finish: far beyond every timeout used here, never slept.
BOUND = 5.0


def timers(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The deadlines of every timer the running loop arms from now on (``asyncio.timeout``,
    ``asyncio.wait`` with a timeout, ``call_later`` all go through ``loop.call_at``)."""
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    original = loop.call_at

    def call_at(
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        armed.append(when)
        return original(when, callback, *args, context=context)

    monkeypatch.setattr(loop, "call_at", call_at)
    return armed


async def finish(awaitable: Awaitable[T]) -> asyncio.Task[T]:
    """``awaitable`` run as a task until it ends (or :data:`BOUND` passes: a failure)."""

    async def run() -> T:
        return await awaitable

    task = asyncio.get_running_loop().create_task(run())
    done, _ = await asyncio.wait({task}, timeout=BOUND)
    if task not in done:
        task.cancel()
        pytest.fail(f"still running after {BOUND} s")
    return task


def resumed(awaitable: Awaitable[T]) -> Awaitable[T]:
    """``first_step(awaitable)``, which must have suspended."""
    started = first_step(awaitable)
    assert not isinstance(started, Done), f"returned in its first step: {started!r}"
    return started


# -- returns in its first step --------------------------------------------------------------


async def test_a_coroutine_that_returns_at_once_is_done_with_no_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    armed = timers(monkeypatch)
    steps: list[str] = []

    async def immediate() -> str:
        steps.append("ran")
        return "value"

    started = first_step(immediate())
    assert isinstance(started, Done)
    assert started.value == "value"
    assert steps == ["ran"]
    assert await within(immediate(), 0.05) == "value"
    assert armed == []
    # The control: a coroutine that waits does arm the deadline (so the count above can fail).
    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    assert await within(event.wait(), 60) is True
    assert len(armed) == 1


async def test_a_coroutine_that_returns_none_at_once_is_done_with_none() -> None:
    async def nothing() -> object:
        return None

    started = first_step(nothing())
    assert isinstance(started, Done)
    assert started.value is None
    assert await within(nothing(), 1) is None


async def test_a_coroutine_awaiting_finished_work_only_is_done_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    armed = timers(monkeypatch)

    async def inner() -> int:
        return 20

    async def outer() -> int:
        return await inner() + await inner() + 2

    assert first_step(outer()) == Done(42)
    assert await within(outer(), 0.05) == 42
    assert armed == []


async def test_an_exception_in_the_first_step_propagates_and_closes_the_coroutine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    armed = timers(monkeypatch)
    cleaned: list[str] = []

    async def boom() -> int:
        try:
            raise ValueError("first step")
        finally:
            cleaned.append("finally")

    coroutine = boom()
    with pytest.raises(ValueError, match="first step"):
        first_step(coroutine)
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
    assert cleaned == ["finally"]
    with pytest.raises(ValueError, match="first step"):
        await within(boom(), 0.05)
    assert armed == []


# -- suspends -------------------------------------------------------------------------------


async def test_a_suspended_coroutine_goes_on_and_returns_its_value() -> None:
    steps: list[str] = []
    event = asyncio.Event()

    async def waits() -> str:
        steps.append("first step")
        await event.wait()
        steps.append("resumed")
        return "value"

    rest = resumed(waits())
    assert steps == ["first step"]  # run at once, not when awaited
    asyncio.get_running_loop().call_soon(event.set)
    task = await finish(rest)
    assert task.result() == "value"
    assert steps == ["first step", "resumed"]
    event.clear()
    asyncio.get_running_loop().call_soon(event.set)
    assert (await finish(within(waits(), BOUND))).result() == "value"


async def test_values_sent_back_by_futures_are_delivered_after_each_suspension() -> None:
    loop = asyncio.get_running_loop()

    async def gather_values() -> list[object]:
        values: list[object] = []
        for value in (1, "two", None, [3]):
            future: asyncio.Future[object] = loop.create_future()
            loop.call_soon(future.set_result, value)
            values.append(await future)
            await asyncio.sleep(0)  # a bare yield (None) between them
        return values

    assert (await finish(resumed(gather_values()))).result() == [1, "two", None, [3]]
    assert (await finish(within(gather_values(), BOUND))).result() == [1, "two", None, [3]]


async def test_bare_yields_work() -> None:
    async def yields(times: int) -> int:
        for _ in range(times):
            await asyncio.sleep(0)
        return times

    assert (await finish(resumed(yields(1)))).result() == 1
    assert (await finish(within(yields(50), BOUND))).result() == 50


async def test_exceptions_after_a_suspension_propagate() -> None:
    loop = asyncio.get_running_loop()

    async def from_future() -> int:
        future: asyncio.Future[int] = loop.create_future()
        loop.call_soon(future.set_exception, KeyError("from the future"))
        return await future

    async def own() -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        raise LookupError("after suspending")

    for make, kind in ((from_future, KeyError), (own, LookupError)):
        task = await finish(resumed(make()))
        assert isinstance(task.exception(), kind)
        task = await finish(within(make(), BOUND))
        assert isinstance(task.exception(), kind)


async def test_an_exception_caught_by_the_coroutine_after_suspension_is_its_own() -> None:
    loop = asyncio.get_running_loop()

    async def recovers() -> str:
        future: asyncio.Future[str] = loop.create_future()
        loop.call_soon(future.set_exception, ValueError("caught"))
        try:
            return await future
        except ValueError as exc:
            await asyncio.sleep(0)
            return f"recovered from {exc}"

    assert (await finish(within(recovers(), BOUND))).result() == "recovered from caught"


async def test_a_hanging_coroutine_times_out_and_sees_the_cancellation() -> None:
    seen: list[str] = []

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    loop = asyncio.get_running_loop()
    started = loop.time()
    task = await finish(within(hangs(), 0.05))
    elapsed = loop.time() - started
    assert isinstance(task.exception(), TimeoutError)
    assert 0.04 <= elapsed < BOUND
    assert seen == ["cancelled", "finally"]


async def test_a_timeout_leaves_the_task_uncancelled() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    async def times_out() -> int:
        with pytest.raises(TimeoutError):
            await within(hangs(), 0.01)
        await asyncio.sleep(0)  # the task goes on: no cancellation left pending
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert (await finish(times_out())).result() == 0


async def test_the_coroutines_own_timeout_inside_within_is_its_own() -> None:
    async def inner() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()
        except TimeoutError:
            await asyncio.sleep(0)
            return "inner timed out"
        return "impossible"

    assert (await finish(within(inner(), BOUND))).result() == "inner timed out"
    # Nested within: the inner deadline passes first and is the inner's; the outer one passes
    # first and cancels the inner coroutine, which sees the cancellation.
    assert (await finish(within(within(inner(), BOUND), BOUND))).result() == "inner timed out"
    seen: list[str] = []

    async def long_inner() -> None:
        try:
            await within(asyncio.Event().wait(), 60)
        finally:
            seen.append("inner finally")

    task = await finish(within(long_inner(), 0.02))
    assert isinstance(task.exception(), TimeoutError)
    assert seen == ["inner finally"]


def _within_a_minute(coroutine: Coroutine[Any, Any, None]) -> Awaitable[None]:
    return within(coroutine, 60)


@pytest.mark.parametrize("wrap", [_within_a_minute, resumed], ids=["within", "first_step"])
async def test_cancelling_the_task_cancels_the_resumed_coroutine(
    wrap: Callable[[Coroutine[Any, Any, None]], Awaitable[None]],
) -> None:
    seen: list[str] = []
    entered = asyncio.Event()

    async def waits() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    async def run() -> None:
        await wrap(waits())

    task = asyncio.get_running_loop().create_task(run())
    await asyncio.wait_for(entered.wait(), BOUND)
    await asyncio.sleep(0)  # the task is now suspended inside waits()
    assert not task.done()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=BOUND)
    assert task in done
    assert task.cancelled()
    assert seen == ["cancelled", "finally"]


async def test_closing_the_awaiting_coroutine_closes_the_resumed_one() -> None:
    seen: list[str] = []
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def inner() -> None:
        try:
            await future
        finally:
            seen.append("inner finally")

    waiting = inner()  # held here: the garbage collector must not be what closes it

    async def outer() -> None:
        await resumed(waiting)

    coroutine = outer()
    assert coroutine.send(None) is future  # the future inner() waits on reaches the task
    coroutine.close()
    assert seen == ["inner finally"]
    assert inspect.getcoroutinestate(waiting) == inspect.CORO_CLOSED
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


class Ask:
    """Yields a question to whoever drives the coroutine, and returns what it sends back."""

    def __init__(self, question: str) -> None:
        self.question = question

    def __await__(self) -> Generator[str, str, str]:
        answer = yield self.question
        return answer


async def test_sent_and_thrown_values_reach_the_resumed_coroutine() -> None:
    """Driven by hand, as a task drives it: each yielded value out, each sent value in, each
    thrown exception into the coroutine (which may catch it)."""
    caught: list[BaseException] = []

    async def converses() -> tuple[str, str, str]:
        first = await Ask("q1")
        second = await Ask("q2")
        try:
            await Ask("q3")
        except ValueError as exc:
            caught.append(exc)
        third = await Ask("q4")
        return first, second, third

    async def outer() -> tuple[str, str, str]:
        return await resumed(converses())

    coroutine = outer()
    assert coroutine.send(None) == "q1"
    assert coroutine.send("a1") == "q2"
    assert coroutine.send("a2") == "q3"
    thrown = ValueError("thrown in")
    assert coroutine.throw(thrown) == "q4"
    assert caught == [thrown]
    with pytest.raises(StopIteration) as done:
        coroutine.send("a4")
    assert done.value.value == ("a1", "a2", "a4")


async def test_an_uncaught_thrown_exception_ends_the_resumed_coroutine() -> None:
    async def asks() -> str:
        return await Ask("q")

    async def outer() -> str:
        return await resumed(asks())

    coroutine = outer()
    assert coroutine.send(None) == "q"
    with pytest.raises(KeyError, match="thrown"):
        coroutine.throw(KeyError("thrown"))
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


async def test_cancelling_the_task_at_a_bare_yield_cancels_the_resumed_coroutine() -> None:
    """No future to cancel at a bare yield: only the CancelledError thrown in can stop it."""
    seen: list[str] = []
    spinning = asyncio.Event()

    async def spins_forever() -> None:
        try:
            for spins in range(100_000):  # bounded: a lost cancellation fails, never hangs
                if spins == 3:
                    spinning.set()
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def run() -> None:
        await within(spins_forever(), 60)

    task = asyncio.get_running_loop().create_task(run())
    await asyncio.wait_for(spinning.wait(), BOUND)
    assert not task.done()
    task.cancel()  # the task is between two bare yields: no future waited on
    done, _ = await asyncio.wait({task}, timeout=BOUND)
    if task not in done:
        pytest.fail("the cancellation never reached the coroutine")
    assert task.cancelled()
    assert seen == ["cancelled"]


async def test_the_first_step_runs_in_the_callers_context() -> None:
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="unset")
    variable.set("caller")

    async def reads() -> tuple[str, str]:
        first = variable.get()
        await asyncio.sleep(0)
        return first, variable.get()

    assert (await finish(within(reads(), BOUND))).result() == ("caller", "caller")


# -- other awaitables -----------------------------------------------------------------------


class Ready:
    """An awaitable, not a coroutine, that returns without yielding."""

    def __await__(self) -> Generator[Any, None, str]:
        return "ready"
        yield  # a generator all the same


class Later:
    """An awaitable, not a coroutine, that waits for a future first."""

    def __await__(self) -> Generator[Any, None, str]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        loop.call_soon(future.set_result, "later")
        value = yield from future
        return value


async def test_a_future_is_handed_back_and_awaited_under_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    assert first_step(future) is future
    loop.call_soon(future.set_result, 7)
    assert (await finish(within(future, BOUND))).result() == 7
    armed = timers(monkeypatch)
    never: asyncio.Future[int] = loop.create_future()
    started = loop.time()
    task = await finish(within(never, 0.02))
    assert isinstance(task.exception(), TimeoutError)
    assert never.cancelled()
    # Not a coroutine: under a timer at once (finish's own, BOUND away, is not the one).
    assert [when for when in armed if when < started + 1] != []


async def test_a_custom_awaitable_is_handed_back_and_awaited() -> None:
    for awaitable, expected in ((Ready(), "ready"), (Later(), "later")):
        assert first_step(awaitable) is awaitable
        assert (await finish(within(awaitable, BOUND))).result() == expected


# -- callers: ResolverSet.resolve -------------------------------------------------------------


def inquiry() -> Inquiry:
    return Inquiry(
        "   88899",
        "00001234",
        "   8889900001234",
        "8889900001234",
        "r1",
        "VIRTUAL_ACCOUNT_BTN",
        MappingProxyType({}),
    )


class Immediate:
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    async def resolve(self, inquiry: Inquiry) -> Outcome:
        return self.outcome


class Hanging:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def resolve(self, inquiry: Inquiry) -> Outcome:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.seen.append("cancelled")
            raise
        return BillStatus.NOT_FOUND


class Slow:
    async def resolve(self, inquiry: Inquiry) -> Outcome:
        await asyncio.sleep(0.01)
        return BillStatus.EXPIRED


async def test_resolver_that_hangs_is_unavailable_after_its_timeout() -> None:
    hanging = Hanging()
    resolvers = ResolverSet.single(hanging, timeout=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = await finish(resolvers.resolve(resolvers.routes[0], inquiry()))
    assert isinstance(task.exception(), ResolverUnavailable)
    assert "timed out" in str(task.exception())
    assert 0.04 <= loop.time() - started < BOUND
    assert hanging.seen == ["cancelled"]


async def test_resolver_that_answers_at_once_needs_no_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    armed = timers(monkeypatch)
    bill = Bill("Alice", Decimal("10000.00"))
    for outcome in (BillStatus.ALREADY_PAID, bill):
        resolvers = ResolverSet.single(Immediate(outcome), timeout=0.01)
        assert await resolvers.resolve(resolvers.routes[0], inquiry()) == outcome
    assert armed == []


async def test_resolver_that_waits_a_little_answers_within_its_timeout() -> None:
    resolvers = ResolverSet.single(Slow(), timeout=BOUND)
    task = await finish(resolvers.resolve(resolvers.routes[0], inquiry()))
    assert task.result() is BillStatus.EXPIRED


# -- callers: RawRequest.body -----------------------------------------------------------------

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/v1/x",
    "headers": [(b"content-length", b"5")],
}


def delayed(*messages: dict[str, Any], delay: float = 0.02) -> Callable[[], Awaitable[Any]]:
    """A receive() handing out ``messages`` in turn, each after ``delay`` seconds."""
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(delay)
        return queue.pop(0)

    return receive


def never(seen: list[str]) -> Callable[[], Awaitable[Any]]:
    async def receive() -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        finally:
            seen.append("receive ended")
        raise AssertionError("unreachable")

    return receive


async def test_body_already_buffered_is_read_with_no_timer_or_watch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"hello"}

    deadlines = Deadlines(tick=0.01)
    tasks = asyncio.all_tasks()
    armed = timers(monkeypatch)
    for watcher in (None, deadlines):
        assert await RawRequest(SCOPE, receive, watcher).body(100, 0.05) == b"hello"
    assert armed == []
    assert asyncio.all_tasks() == tasks  # no deadline sweeper started
    await deadlines.stop()


@pytest.mark.parametrize("tick", [None, 0.01], ids=["asyncio-timeout", "deadlines"])
async def test_body_that_arrives_late_is_still_read(tick: float | None) -> None:
    deadlines = None if tick is None else Deadlines(tick=tick)
    receive = delayed(
        {"type": "http.request", "body": b"he", "more_body": True},
        {"type": "http.request", "body": b"llo", "more_body": False},
    )
    try:
        task = await finish(RawRequest(SCOPE, receive, deadlines).body(100, BOUND))
        assert task.result() == b"hello"
    finally:
        if deadlines is not None:
            await deadlines.stop()


@pytest.mark.parametrize("tick", [None, 0.01], ids=["asyncio-timeout", "deadlines"])
async def test_body_never_received_is_refused_in_time(tick: float | None) -> None:
    deadlines = None if tick is None else Deadlines(tick=tick)
    seen: list[str] = []

    async def read() -> tuple[bytes | SnapError, int]:
        try:
            body: bytes | SnapError = await RawRequest(SCOPE, never(seen), deadlines).body(
                100, 0.05
            )
        except SnapError as error:
            body = error
        task = asyncio.current_task()
        assert task is not None
        return body, task.cancelling()

    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        task = await finish(read())
    finally:
        if deadlines is not None:
            await deadlines.stop()
    error, cancelling = task.result()
    assert isinstance(error, SnapError)
    assert error.case is Case.BAD_REQUEST
    assert error.detail == "body not received in time"
    assert cancelling == 0  # the deadline's cancellation was taken back
    assert 0.04 <= loop.time() - started < BOUND
    assert seen == ["receive ended"]
