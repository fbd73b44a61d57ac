"""The state interface, asserted against every backend (memory, and Redis on a real server).

Whatever ``cache.url`` chooses, the replay guard and the answer cache behave the same way; the
backend-specific suites (test_memory, test_redis) cover what only one of them does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from gateway import Bill, BillStatus
from gateway.config import CacheSettings
from gateway.metrics import Metrics
from gateway.state import create_state
from gateway.state.base import Claim, StateBackend, StoredAnswer
from gateway.state.memory import MemoryState

from ..support import RedisServer

pytestmark = pytest.mark.anyio

FP = "a" * 64
OTHER_FP = "b" * 64
BILL = Bill(name="Budi", amount=Decimal("25000.00"))


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[StateBackend]:
    if request.param == "memory":
        url = "memory://"
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    backend = create_state(CacheSettings(url=url), Metrics())
    assert isinstance(backend, StateBackend)
    assert isinstance(backend, MemoryState) == (request.param == "memory")
    try:
        yield backend
    finally:
        await backend.close()


async def test_first_claim_is_new_and_a_retry_replays_the_stored_answer(
    state: StateBackend,
) -> None:
    first = await state.begin("day:ext-1", FP, 60.0, None)
    assert first.claim is Claim.NEW
    await state.finish("day:ext-1", FP, StoredAnswer(200, b'{"ok":1}'), 60.0)

    async def replayed() -> StoredAnswer | None:
        again = await state.begin("day:ext-1", FP, 60.0, None)
        return again.answer if again.claim is Claim.REPLAY else None

    # Redis stores the answer off the request path: poll until it is there.
    answer = None
    for _ in range(200):
        answer = await replayed()
        if answer is not None:
            break
        await asyncio.sleep(0.01)
    assert answer == StoredAnswer(200, b'{"ok":1}')


async def test_same_id_with_another_request_conflicts(state: StateBackend) -> None:
    assert (await state.begin("day:ext-2", FP, 60.0, None)).claim is Claim.NEW
    assert (await state.begin("day:ext-2", OTHER_FP, 60.0, None)).claim is Claim.CONFLICT


async def test_identical_request_in_flight_is_pending_until_answered(state: StateBackend) -> None:
    assert (await state.begin("day:ext-3", FP, 60.0, None)).claim is Claim.NEW
    assert (await state.begin("day:ext-3", FP, 60.0, None)).claim is Claim.PENDING
    waiter = asyncio.create_task(state.wait("day:ext-3", 5.0))
    await state.finish("day:ext-3", FP, StoredAnswer(200, b"done"), 60.0)
    assert await waiter == StoredAnswer(200, b"done")


async def test_release_lets_the_sender_retry(state: StateBackend) -> None:
    assert (await state.begin("day:ext-4", FP, 60.0, None)).claim is Claim.NEW
    await state.release("day:ext-4")
    assert (await state.begin("day:ext-4", FP, 60.0, None)).claim is Claim.NEW


async def test_cache_put_get_invalidate_and_purge(state: StateBackend) -> None:
    assert await state.get("8889900001") is None
    await state.put("8889900001", BILL, 30.0)
    await state.put("8889900002", BillStatus.ALREADY_PAID, 30.0)
    assert await state.get("8889900001") == BILL
    assert await state.get("8889900002") is BillStatus.ALREADY_PAID
    await state.invalidate("8889900001")
    assert await state.get("8889900001") is None
    assert await state.purge(["8889900002", "8889900003"]) == 1
    assert await state.get("8889900002") is None


async def test_a_new_claim_reads_the_cached_outcome_in_the_same_step(
    state: StateBackend,
) -> None:
    await state.put("8889900009", BILL, 30.0)
    begin = await state.begin("day:ext-5", FP, 60.0, "8889900009")
    assert begin.claim is Claim.NEW
    assert begin.cached == BILL


async def test_zero_ttl_is_not_cached(state: StateBackend) -> None:
    await state.put("8889900010", BILL, 0.0)
    assert await state.get("8889900010") is None


async def test_resolve_lock_is_exclusive_until_unlocked(state: StateBackend) -> None:
    assert await state.acquire("8889900011", 5.0)
    await state.put("8889900011", BILL, 30.0)
    assert await state.await_answer("8889900011", 1.0) == BILL
    await state.unlock("8889900011")


async def test_status_names_the_backend_and_health(state: StateBackend) -> None:
    status = state.status()
    assert status["backend"] in ("memory", "redis")
    assert status["ok"] is True


async def settled(state: StateBackend, code: str, expected: object) -> object:
    """``get(code)`` once it is ``expected``, polling with a deadline: Redis sends mark_paid
    without waiting for it."""
    deadline = asyncio.get_running_loop().time() + 5
    while (found := await state.get(code)) != expected:
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.01)
    return found


@pytest.mark.parametrize(
    ("cached", "payment_closed", "after"),
    [
        (BILL, True, BillStatus.ALREADY_PAID),  # a closed bill: "already paid" until the hook ran
        (Bill(name="Top-up", amount=Decimal("0"), trx_type="O"), True, None),  # open: forgotten
        (Bill(name="Budi", amount=Decimal("1.00"), reusable=True), True, "unchanged"),
        (None, True, BillStatus.ALREADY_PAID),  # nothing cached: the payment's own type decides
        (None, False, None),
        (BillStatus.NOT_FOUND, True, BillStatus.ALREADY_PAID),
    ],
)
async def test_mark_paid_follows_the_bill(
    state: StateBackend, cached: Bill | BillStatus | None, payment_closed: bool, after: object
) -> None:
    code = "8889900020001"
    if cached is not None:
        await state.put(code, cached, 30.0)
    await state.mark_paid(code, payment_closed, 60.0)
    await settled(state, code, cached if after == "unchanged" else after)


@pytest.mark.parametrize(
    ("cached", "kept"),
    [
        (BILL, False),  # the bill the hook has now recorded as paid: the resolver decides again
        (BillStatus.ALREADY_PAID, False),  # mark_paid's stand-in
        (Bill(name="Top-up", amount=Decimal("0"), trx_type="O"), False),
        (Bill(name="Budi", amount=Decimal("1.00"), reusable=True), True),  # reusable: stays
        (None, False),
    ],
)
async def test_forget_paid_drops_all_but_a_reusable_bill(
    state: StateBackend, cached: Bill | BillStatus | None, kept: bool
) -> None:
    code = "8889900020002"
    other = "8889900020003"
    await state.put(other, BILL, 30.0)
    if cached is not None:
        await state.put(code, cached, 30.0)
    await state.forget_paid(code)
    await settled(state, code, cached if kept else None)
    assert await state.get(other) == BILL  # only that VA's answer
    # Sent after the script, in order: a reusable bill is still there, not merely not yet gone.
    assert await state.get(code) == (cached if kept else None)
