"""The deliverer against the real file journal: odd identifiers, unrecordable deliveries, stop."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import Bill, BillStatus, Inquiry, Payment
from gateway.config import PaymentSettings
from gateway.doku.simulator import payment_body
from gateway.metrics import Metrics
from gateway.payments.delivery import ACCEPTED_KEPT, Deliverer
from gateway.payments.journal.base import Journal, JournalEntry
from gateway.payments.journal.file import FileJournal
from gateway.resolvers.dispatch import ResolverSet
from gateway.snap.payment import parse_payment

pytestmark = pytest.mark.anyio

CODE = "8889900001234"
FAST = PaymentSettings(backoff_initial=0.01, backoff_max=0.05, max_attempts=3)


class Hook:
    """A resolver whose on_payment records the paymentRequestIds it is called with."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[str] = []
        self.delay = delay

    async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
        return Bill(name="B", amount=Decimal("1.00"))

    async def on_payment(self, payment: Payment) -> None:
        self.calls.append(payment.payment_request_id)
        await asyncio.sleep(self.delay)


def entry(prid: str) -> JournalEntry:
    document = payment_body(CODE, "   88899", "1.00", payment_request_id=prid)
    raw = json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return JournalEntry(prid, CODE, "88899", document, time.time(), raw=raw)


async def wait_for(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``check()`` (awaited if it returns an awaitable) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def running() -> AsyncIterator[Callable[..., Any]]:
    """Starts deliverers; stops them all at the end of the test."""
    started: list[Deliverer] = []

    async def start(journal: Journal, hook: Hook, settings: PaymentSettings = FAST) -> Deliverer:
        deliverer = Deliverer(journal, ResolverSet.single(hook, "hook"), settings, Metrics())
        await deliverer.start()
        started.append(deliverer)
        return deliverer

    yield start
    for deliverer in started:
        await deliverer.stop()


@pytest.mark.parametrize("odd", ["\ud800", "A\nB", "\\", '"', "\u2028", "x\x00y"])
async def test_an_odd_payment_request_id_is_delivered_once_and_blocks_nothing(
    tmp_path: Path, running: Callable[..., Any], odd: str
) -> None:
    journal = FileJournal(tmp_path)
    for prid in (odd, "PR-NEXT"):
        await journal.append(entry(prid))
    hook = Hook()
    deliverer = await running(journal, hook)
    await wait_for(lambda: hook.calls == [odd, "PR-NEXT"])
    await deliverer.stop()
    # After a restart nothing is delivered again, and no part of the id counts as delivered.
    restarted, again = FileJournal(tmp_path), Hook()
    await running(restarted, again)
    await restarted.append(entry("PR-LAST"))
    await wait_for(lambda: again.calls == ["PR-LAST"])
    assert await restarted.is_delivered(odd)
    assert hook.calls == [odd, "PR-NEXT"]
    if odd == "A\nB":
        assert not await restarted.is_delivered("A") and not await restarted.is_delivered("B")


class Unrecordable(FileJournal):
    """A journal that cannot record one payment's delivery, whatever is tried."""

    async def mark_delivered(self, payment_request_id: str) -> None:
        if payment_request_id == "PR-STUCK":
            raise OSError("cannot record this one")
        await super().mark_delivered(payment_request_id)


async def test_a_delivery_that_cannot_be_recorded_becomes_a_dead_letter(
    tmp_path: Path, running: Callable[..., Any]
) -> None:
    journal = Unrecordable(tmp_path)
    for prid in ("PR-STUCK", "PR-NEXT"):
        await journal.append(entry(prid))
    hook = Hook()
    await running(journal, hook)
    await wait_for(lambda: hook.calls == ["PR-STUCK", "PR-NEXT"])
    [letter] = await journal.dead_letters()
    assert letter.entry.payment_request_id == "PR-STUCK"
    assert letter.attempts == FAST.max_attempts
    assert "could not be recorded" in letter.error
    # The record was retried, never the hook.
    assert hook.calls == ["PR-STUCK", "PR-NEXT"]


async def test_a_hook_that_outlasts_hook_timeout_is_retried_then_parked(
    tmp_path: Path, running: Callable[..., Any]
) -> None:
    journal = FileJournal(tmp_path)
    await journal.append(entry("PR-SLOW"))
    hook = Hook(delay=5.0)
    await running(journal, hook, replace(FAST, hook_timeout=0.05))
    await wait_for(lambda: len(hook.calls) == FAST.max_attempts)
    await wait_for(journal.dead_letters)
    [letter] = await journal.dead_letters()
    assert letter.entry.payment_request_id == "PR-SLOW"
    assert "TimeoutError" in letter.error
    assert not await journal.is_delivered("PR-SLOW")


async def test_stop_lets_a_running_delivery_finish_and_be_recorded(
    tmp_path: Path, running: Callable[..., Any]
) -> None:
    journal = FileJournal(tmp_path)
    await journal.append(entry("PR-SLOW"))
    hook = Hook(delay=0.3)
    deliverer = await running(journal, hook)
    await wait_for(lambda: hook.calls == ["PR-SLOW"])
    await deliverer.stop()  # SIGTERM while the hook runs
    assert await FileJournal(tmp_path).is_delivered("PR-SLOW")


async def test_an_idle_deliverer_stops_at_once(tmp_path: Path, running: Callable[..., Any]) -> None:
    deliverer = await running(FileJournal(tmp_path), Hook())
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await deliverer.stop()
    assert time.monotonic() - started < 0.5


async def test_unreadable_journal_lines_are_counted(
    tmp_path: Path, running: Callable[..., Any]
) -> None:
    (tmp_path / "payments.jsonl").write_bytes(b"not json\n")
    metrics = Metrics()
    journal = FileJournal(tmp_path)
    deliverer = Deliverer(journal, ResolverSet.single(Hook()), FAST, metrics)
    await deliverer.start()
    try:
        sample = "doku_gateway_journal_unreadable_entries_total 1.0"
        await wait_for(lambda: sample in metrics.render().decode())
    finally:
        await deliverer.stop()


class Sizes(FileJournal):
    """A file journal that records the size of each lease asked for and given."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.asked: list[tuple[int, int]] = []

    async def read(self, shard: int, timeout: float, limit: int = 64) -> Any:
        lease = await super().read(shard, timeout, limit)
        if lease is not None and lease.entries:
            self.asked.append((limit, len(lease.entries)))
        return lease


async def test_a_journal_behind_gets_larger_leases_then_the_default_again(
    tmp_path: Path, running: Callable[..., Any]
) -> None:
    """A full lease doubles the next one (up to MAX_LEASE): a burst is caught up in fewer
    turns of a busy loop. Once a lease is not full, the default comes back. Each payment is
    still delivered once, in order per VA."""
    journal = Sizes(tmp_path)
    prids = [f"BACKLOG-{n}" for n in range(64 + 128 + 100)]
    await asyncio.gather(*(journal.append(entry(prid)) for prid in prids))
    hook = Hook()
    await running(journal, hook)
    await wait_for(lambda: len(hook.calls) == len(prids))
    assert journal.asked[:3] == [(64, 64), (128, 128), (256, 100)]
    await journal.append(entry("AFTER"))
    await wait_for(lambda: hook.calls[-1:] == ["AFTER"])
    assert journal.asked[-1] == (64, 1)
    assert hook.calls[: len(prids)] == prids  # one VA: its payments in journal order
    assert len(set(hook.calls)) == len(hook.calls)


class Gate(Hook):
    """Hooks that wait until the test opens them; counts how many wait at once."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.waiting = 0
        self.most = 0

    async def on_payment(self, payment: Payment) -> None:
        self.calls.append(payment.payment_request_id)
        self.waiting += 1
        self.most = max(self.most, self.waiting)
        try:
            await self.open.wait()
        finally:
            self.waiting -= 1


def entry_for(code: str, prid: str) -> JournalEntry:
    document = payment_body(code, "   88899", "1.00", payment_request_id=prid)
    raw = json.dumps(document).encode()
    return JournalEntry(prid, code, "88899", document, time.time(), raw=raw)


async def test_a_lease_delivers_its_vas_a_window_at_a_time_each_va_in_order(
    tmp_path: Path, running: Callable[..., Any]
) -> None:
    """``delivery_concurrency`` bounds the hooks in flight; every VA is still delivered, its
    payments in journal order."""
    journal = FileJournal(tmp_path)
    codes = [f"88899{n:08d}" for n in range(20)]
    for round_ in range(2):
        for code in codes:
            await journal.append(entry_for(code, f"{code}-{round_}"))
    hook = Gate()
    settings = replace(FAST, delivery_concurrency=3, hook_timeout=30.0)
    await running(journal, hook, settings)
    await wait_for(lambda: hook.waiting == 3)
    await asyncio.sleep(0.05)  # had the window not held, more hooks would have started by now
    assert hook.most == 3 and len(hook.calls) == 3
    hook.open.set()
    await wait_for(lambda: len(hook.calls) == 40)
    assert hook.most == 3
    for code in codes:
        assert [c for c in hook.calls if c.startswith(code)] == [f"{code}-0", f"{code}-1"]


async def test_requests_get_turns_of_the_loop_while_a_lease_is_delivered(
    tmp_path: Path, running: Callable[..., Any]
) -> None:
    """Hooks that never wait used to run a whole lease back to back in one turn of the event
    loop, and requests waited behind it. Counted in turns: between two turns of another task,
    a lease starts at most a quarter of its size (twice that across a refill), whatever the
    number of workers; the leases still grow while the journal is behind."""
    journal = Sizes(tmp_path)
    for n in range(200):
        await journal.append(entry_for(f"88899{n:08d}", f"PR-{n}"))
    hook = Hook()
    batches: list[int] = []

    async def ticker() -> None:
        seen = 0
        while len(hook.calls) < 200:
            await asyncio.sleep(0)
            batches.append(len(hook.calls) - seen)
            seen = len(hook.calls)

    ticking = asyncio.create_task(ticker())
    await running(journal, hook, replace(FAST, delivery_concurrency=1000))
    await asyncio.wait_for(ticking, 30)
    assert sum(batches) == 200
    assert [limit for limit, _ in journal.asked[:3]] == [64, 128, 256]
    assert max(batches) <= 2 * 128 // 4, batches  # a lease of 128 started in one turn before


async def test_payments_parsed_on_acceptance_are_kept_for_delivery_within_a_bound(
    tmp_path: Path, running: Callable[..., Any]
) -> None:
    """What the handler parsed is delivered as it is; past ACCEPTED_KEPT the oldest are
    dropped (another pod delivered them) and parsed again from the journal when delivered."""
    journal = FileJournal(tmp_path)
    hook = Senders()
    deliverer = Deliverer(journal, ResolverSet.single(hook, "hook"), FAST, Metrics())
    prids = [f"KEPT-{n}" for n in range(ACCEPTED_KEPT + 1)]
    for prid in prids:
        accepted = entry(prid)
        await journal.append(accepted)
        deliverer.accepted(replace(parse_payment(accepted.body), sender_name="as accepted"))
    await deliverer.start()
    try:
        await wait_for(lambda: len(hook.senders) == len(prids))
    finally:
        await deliverer.stop()
    assert hook.senders[prids[0]] == "Budi"  # dropped, parsed from the journal again
    assert {hook.senders[prid] for prid in prids[1:]} == {"as accepted"}


class Senders(Hook):
    def __init__(self) -> None:
        super().__init__()
        self.senders: dict[str, str | None] = {}

    async def on_payment(self, payment: Payment) -> None:
        self.senders[payment.payment_request_id] = payment.sender_name
