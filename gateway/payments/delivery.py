"""Delivers journaled payments to the resolvers' ``on_payment`` hooks: at least once, in order
per VA (a VA always maps to one journal shard, and a shard is worked by one process at a time,
entry after entry), with fast retries and backoff, and a dead-letter list for what keeps failing.

A hook must be idempotent on ``payment.payment_request_id``: a delivery that succeeded but whose
record was lost (a crash in between) is repeated. The gateway itself never calls a hook again for
a payment recorded as delivered, even across pods.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from dataclasses import replace
from types import MappingProxyType

from .._eager import within
from ..config import PaymentSettings
from ..log import FailureLog, get_logger
from ..metrics import Metrics
from ..resolvers.dispatch import ResolverSet, Route
from ..snap.models import Bill, Inquiry, Payment
from ..snap.payment import check_amount, parse_payment
from ..state.base import StateBackend
from .journal.base import LEASE, Journal, JournalEntry

__all__ = ["Deliverer", "payment_from_entry"]

_log = get_logger("delivery")

#: The most entries a lease grows to while the journal is behind.
MAX_LEASE = 1024
#: Payments parsed on acceptance kept for their delivery; past this, oldest dropped first (they
#: are parsed again from the journal: another pod delivered them, or the journal is far behind).
ACCEPTED_KEPT = 2 * MAX_LEASE


def payment_from_entry(entry: JournalEntry) -> Payment:
    # The body was validated when it was accepted; composition is not re-checked so that a
    # later config change cannot strand an entry that was already acknowledged.
    return parse_payment(entry.body, check_composition=False)


class _TurnBudget:
    """VAs a lease may start in one turn of the event loop; refilled in the next turn."""

    def __init__(self, size: int) -> None:
        self._size = max(size, 1)
        self._left = self._size
        self._refilled = asyncio.Event()
        self._refilled.set()

    async def take(self) -> None:
        """Returns at once while this turn has some left; otherwise once the next turn refilled
        it (meanwhile the requests that arrived go first)."""
        while self._left <= 0:
            if self._refilled.is_set():
                self._refilled.clear()
                asyncio.get_running_loop().call_soon(self._refill)
            await self._refilled.wait()
        self._left -= 1

    def _refill(self) -> None:
        self._left = self._size
        self._refilled.set()


class _Busy(Exception):
    """Another path (the request in sync mode, another pod) is delivering this payment."""


class _Unrecorded(Exception):
    """The hook returned, but the journal could not record the delivery."""


class Deliverer:
    def __init__(
        self,
        journal: Journal,
        resolvers: ResolverSet,
        settings: PaymentSettings,
        metrics: Metrics,
        state: StateBackend | None = None,
    ) -> None:
        self.journal = journal
        self.state = state
        self.resolvers = resolvers
        self.settings = settings
        self.metrics = metrics
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._delivering: set[int] = set()  # shards with a delivery under way
        # Payments whose hook returned but whose delivery is not recorded yet: the record is
        # retried, not the hook.
        self._hooked: set[str] = set()
        # Payments this process accepted and parsed, by paymentRequestId, until delivered: the
        # delivery need not parse the journaled body a second time (see accepted()).
        self._accepted: dict[str, Payment] = {}
        self._unreadable_counted = 0
        # Shared by the shards' loops: a journal outage logs one line per minute, not four
        # tracebacks a second.
        self._journal_failures = FailureLog(
            _log, "payment delivery interrupted by a journal error; retrying"
        )

    async def start(self) -> None:
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._run(shard), name=f"payment-delivery-{shard}")
            for shard in range(self.journal.shards)
        ]

    async def stop(self) -> None:
        self._stopping.set()
        # A delivery under way is let finish and be recorded (a hook cut off after it returned
        # would be called again after the restart); a shard waiting for work stops at once.
        for shard, task in enumerate(self._tasks):
            if shard not in self._delivering:
                task.cancel()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self.settings.hook_timeout + 1.0)
            for task in late:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def accepted(self, payment: Payment) -> None:
        """``payment`` was parsed from a notification just journaled as new: its delivery uses
        it as it is instead of parsing the journal entry's body again (the same bytes)."""
        accepted = self._accepted
        accepted[payment.payment_request_id] = payment
        if len(accepted) > ACCEPTED_KEPT:
            del accepted[next(iter(accepted))]

    async def deliver_now(self, entry: JournalEntry) -> bool:
        """One attempt, for the in-request (``sync``) mode; True once delivered.

        When another path holds the payment (the background worker, another pod), wait for its
        outcome rather than answering DOKU before the hook has run.
        """
        deadline = asyncio.get_running_loop().time() + self.settings.hook_timeout
        try:
            while True:
                try:
                    await self._attempt(entry)
                    break
                except _Busy:
                    if await self.journal.is_delivered(entry.payment_request_id):
                        return True
                    if asyncio.get_running_loop().time() > deadline:
                        return False
                    await asyncio.sleep(0.05)
        except Exception:
            _log.warning(
                "on_payment hook failed for payment %s (in request)",
                entry.payment_request_id,
                exc_info=True,
            )
            self.metrics.deliveries.labels("retried").inc()
            return False
        return True

    async def _run(self, shard: int) -> None:
        # Nothing may end this loop but stop(): a Redis blip or a full disk must delay
        # deliveries, never end them while notifications keep being acknowledged.
        size = LEASE
        while not self._stopping.is_set():
            try:
                lease = await self.journal.read(shard, timeout=1.0, limit=size)
                if lease is None:  # another pod owns this shard
                    await self._sleep(1.0)
                    continue
                self._journal_failures.succeeded()
                self._count_unreadable()
                limit = size
                # A full lease means the journal is behind: the next one is larger (each lease
                # costs a few turns of an event loop that requests keep busy, so under a burst
                # a fixed size fell behind the acks). It shrinks back once the journal is
                # caught up. Per VA, payments are still delivered one after the other.
                size = min(size * 2, MAX_LEASE) if len(lease.entries) >= size else LEASE
                if not lease.entries:
                    continue
                # In order per VA, concurrently across VAs: a payday burst is thousands of VAs
                # paid once each, and one hook at a time would fall behind the acks.
                by_va: dict[str, list[JournalEntry]] = {}
                for entry in lease.entries:
                    by_va.setdefault(entry.payment_code, []).append(entry)
                # A quarter of the lease may start per turn of the loop: a journal behind gets
                # larger leases, and so more of the loop, until it keeps pace.
                budget = _TurnBudget(limit // 4)
                self._delivering.add(shard)
                handled: list[JournalEntry] = []
                try:
                    try:
                        await self._deliver_lease(shard, list(by_va.values()), handled, budget)
                    finally:
                        # What was handled is marked so together (one command on Redis), also
                        # when a sibling failed; an entry delivered but not marked is read
                        # again, found delivered, and marked then.
                        await self.journal.done_all(shard, handled)
                finally:
                    self._delivering.discard(shard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._journal_failures.failed(exc)
                await self._sleep(1.0)

    async def _deliver_lease(
        self,
        shard: int,
        by_va: list[list[JournalEntry]],
        handled: list[JournalEntry],
        budget: _TurnBudget,
    ) -> None:
        """A lease's VAs, ``delivery_concurrency`` at a time, each VA's entries in order, and
        no more VAs started per turn of the event loop than ``budget`` allows.

        A task per VA, all started at once, ran their first steps back to back in one turn of
        the loop: a lease of 1 024 held the requests behind it for tens of milliseconds.
        """
        queue = iter(by_va)  # shared: each worker takes the next VA when it is free

        async def work() -> None:
            for entries in queue:
                await budget.take()
                await self._deliver_in_order(shard, entries, handled)

        # A task group: when one VA's step fails (a Redis blip), the others are cancelled, not
        # left running beside the next read of the same entries.
        async with asyncio.TaskGroup() as group:
            for _ in range(min(self.settings.delivery_concurrency, len(by_va))):
                group.create_task(work())

    async def _deliver_in_order(
        self, shard: int, entries: list[JournalEntry], handled: list[JournalEntry]
    ) -> None:
        """One VA's entries, one after the other, each added to ``handled`` once handled;
        stops at the first not handled (the deliverer is stopping: it stays in the journal,
        and so do the ones behind it)."""
        for entry in entries:
            if self._stopping.is_set() or not await self._deliver(shard, entry):
                return
            handled.append(entry)

    def _count_unreadable(self) -> None:
        unreadable = self.journal.unreadable
        if unreadable > self._unreadable_counted:
            self.metrics.journal_unreadable.inc(unreadable - self._unreadable_counted)
            self._unreadable_counted = unreadable

    async def _deliver(self, shard: int, entry: JournalEntry) -> bool:
        """Deliver ``entry`` or park it as a dead letter: True once handled, False when the
        deliverer stops first (the entry stays in the journal)."""
        attempts = 0
        delay = self.settings.backoff_initial
        while True:
            try:
                await self._attempt(entry)
                return True
            except asyncio.CancelledError:
                raise
            except _Busy:
                await self._sleep(0.2)
                if self._stopping.is_set():
                    return False
                continue
            except Exception as exc:
                attempts += 1
                if attempts >= self.settings.max_attempts:
                    error = f"{type(exc).__name__}: {exc}"[:500]
                    # Parked whatever failed, the hook or its record: nothing blocks the shard.
                    await self.journal.dead_letter(entry, error, attempts)
                    self._hooked.discard(entry.payment_request_id)
                    self.metrics.deliveries.labels("dead_letter").inc()
                    try:  # a gauge: failing to read it must not park the payment twice
                        self.metrics.dead_letters.set(len(await self.journal.dead_letters()))
                    except Exception as refresh:
                        _log.warning("dead-letter count not refreshed: %s", refresh)
                    _log.error(
                        "payment %s parked as a dead letter after %d attempts: %s",
                        entry.payment_request_id,
                        attempts,
                        error,
                    )
                    return True
                self.metrics.deliveries.labels("retried").inc()
                # The traceback once per payment; later attempts say what failed in one line.
                _log.warning(
                    "%s for payment %s (attempt %d): %s: %s",
                    "delivery record failed"
                    if isinstance(exc, _Unrecorded)
                    else "on_payment hook failed",
                    entry.payment_request_id,
                    attempts,
                    type(exc).__name__,
                    exc,
                    exc_info=exc if attempts == 1 else None,
                )
            await self._sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 (jitter)
            if self._stopping.is_set():
                return False
            delay = min(delay * 2, self.settings.backoff_max)
            await self.journal.keepalive(shard)

    async def _attempt(self, entry: JournalEntry) -> None:
        payment = self._accepted.pop(entry.payment_request_id, None) or payment_from_entry(entry)
        route = self.resolvers.route(entry.partner_prefix)
        hook = None if route is None else getattr(route.resolver, "on_payment", None)
        if route is None or hook is None:
            await self._record(entry.payment_request_id)
            return
        prid = entry.payment_request_id
        # The lock and the check that it is not delivered yet, in one step where the journal
        # can (one Redis round trip).
        claimed = await self.journal.claim_delivery(prid, self.settings.hook_timeout + 5.0)
        if claimed is None:
            return
        if not claimed:
            raise _Busy
        try:
            if prid not in self._hooked:
                payment = await self._flag(route, payment)
                result = hook(payment)
                if inspect.isawaitable(result):
                    # Its deadline armed only if it waits (a hook that records in memory
                    # or queues the payment returns at once): a timer per payment was ~3 %
                    # of the loop in a payment burst.
                    await within(result, self.settings.hook_timeout)
                self._hooked.add(prid)
            await self._record(prid, release=True)
            self._hooked.discard(prid)
            self.metrics.deliveries.labels("delivered").inc()
            await self._refresh(payment)
        finally:
            await self.journal.unlock(prid)

    async def _record(self, prid: str, *, release: bool = False) -> None:
        """Record the delivery; ``release``: and give up the lock with it (one step where the
        journal can; the caller's unlock then has nothing left to do)."""
        try:
            if release:
                await self.journal.record_delivery(prid)
            else:
                await self.journal.mark_delivered(prid)
        except Exception as exc:
            raise _Unrecorded(
                f"delivered, but the delivery could not be recorded: {type(exc).__name__}: {exc}"
            ) from exc

    async def _refresh(self, payment: Payment) -> None:
        """The merchant has recorded the payment: drop the "paid, being delivered" answer the
        notification left in the cache, so the next inquiry asks the resolver again."""
        if self.state is None:
            return
        try:
            await self.state.forget_paid(payment.payment_code)
        except Exception:
            _log.warning("could not refresh the cached answer after a payment", exc_info=True)

    async def _flag(self, route: Route, payment: Payment) -> Payment:
        """Compare the paid amount with what the resolver says the bill is."""
        inquiry = Inquiry(
            partner_service_id=payment.partner_service_id,
            customer_no=payment.customer_no,
            virtual_account_no=payment.virtual_account_no,
            payment_code=payment.payment_code,
            inquiry_request_id=payment.inquiry_request_id or payment.payment_request_id,
            channel=payment.channel,
            body=MappingProxyType(dict(payment.body)),
        )
        try:
            bill = await self.resolvers.resolve(route, inquiry)
        except Exception:
            return replace(payment, flags=("bill_unverified",))
        flagged = check_amount(payment, bill)
        if isinstance(bill, Bill) or flagged.flags:
            for flag in flagged.flags:
                self.metrics.flagged.labels(flag).inc()
            if flagged.flags:
                _log.warning(
                    "payment %s flagged: %s", payment.payment_request_id, ", ".join(flagged.flags)
                )
        return flagged

    async def _sleep(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass
