from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from gateway.snap.models import Bill, BillStatus
from gateway.state.base import Claim, StoredAnswer
from gateway.state.memory import MemoryState

pytestmark = pytest.mark.anyio


async def test_claim_replay_conflict_and_release() -> None:
    state = MemoryState()
    first = await state.begin("k", "fp1", 60, "va")
    assert first.claim is Claim.NEW and first.cached is None
    assert (await state.begin("k", "fp1", 60, "va")).claim is Claim.PENDING
    answer = StoredAnswer(200, b"{}")
    await state.finish("k", "fp1", answer, 60)
    replay = await state.begin("k", "fp1", 60, "va")
    assert replay.claim is Claim.REPLAY and replay.answer == answer
    assert (await state.begin("k", "fp2", 60, "va")).claim is Claim.CONFLICT
    await state.release("k")
    assert (await state.begin("k", "fp2", 60, "va")).claim is Claim.NEW


async def test_waiter_gets_the_answer() -> None:
    state = MemoryState()
    await state.begin("k", "fp", 60, None)
    waiter = asyncio.create_task(state.wait("k", 5))
    await asyncio.sleep(0)
    await state.finish("k", "fp", StoredAnswer(404, b"x"), 60)
    assert await waiter == StoredAnswer(404, b"x")
    assert await state.wait("missing", 0.01) is None


async def test_cached_outcome_comes_with_new_claim() -> None:
    state = MemoryState()
    bill = Bill(name="A", amount=Decimal("1.00"))
    await state.put("va", bill, 60)
    assert (await state.begin("k", "fp", 60, "va")).cached == bill
    await state.invalidate("va")
    assert await state.get("va") is None
    await state.put("va", BillStatus.NOT_FOUND, 0)
    assert await state.get("va") is None


async def test_replay_ids_are_bounded() -> None:
    state = MemoryState(max_replay_ids=3)
    for index in range(5):
        await state.begin(f"k{index}", "fp", 60, None)
    assert state.status()["replay_ids"] == 3
    assert (await state.begin("k0", "other", 60, None)).claim is Claim.NEW


async def test_expired_claims_are_forgotten() -> None:
    state = MemoryState()
    await state.begin("k", "fp", -1, None)
    assert (await state.begin("k", "other", 60, None)).claim is Claim.NEW
