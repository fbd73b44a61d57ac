"""Reconciliation: find payments whose notification never arrived, by asking DOKU.

For every VA in the inquiry ledger answered at least ``min_age`` seconds ago (DOKU advises asking
no sooner than 60 s after a payment, spec §10) with no payment in the journal, ask Check Status.
A payment DOKU reports becomes a notification body of the shape DOKU posts (spec §8.2, marked
``additionalInfo.source = "check-status"``), validated like a real one and appended to the
journal, which delivers it like any other. The journal is idempotent on ``paymentRequestId``, so
running twice, or the real notification arriving later, never makes a second entry.

An unpaid VA is asked about again only after a wait as long as its age at the last check (so at
about 1, 2, 4, 8… minutes): an abandoned inquiry costs about a dozen calls over two days, not one
per run. Past ``max_age`` it gets a last check and is dropped. DOKU's errors are counted and
logged; after three ``DokuUnavailable`` in a row the run stops asking and the rest waits for the
next run, so a DOKU outage does not cost a timeout per VA.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..doku.client import DokuClient
from ..exceptions import DokuError, DokuUnavailable
from ..log import get_logger
from ..snap.amounts import format_amount
from ..snap.errors import FieldError, SnapError
from ..snap.payment import parse_payment
from ..snap.va import CheckStatusRequest, CheckStatusResult
from .journal.base import Journal, JournalEntry
from .ledger.base import InquiryLedger, LedgerEntry

__all__ = ["SOURCE", "ReconcileReport", "Reconciler", "notification_body"]

#: ``additionalInfo.source`` of a notification body built from Check Status.
SOURCE = "check-status"

_log = get_logger("reconcile")
_GIVE_UP_AFTER = 3
# 404 + service 26 + 01 Transaction Not Found / 11 Invalid Virtual Account / 12 Bill not found:
# DOKU has no payment for the VA (a Direct Inquiry VA is not registered at DOKU), so: unpaid.
_NOT_FOUND = frozenset({"4042601", "4042611", "4042612"})


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one run did.

    ``checked``: Check Status calls made. ``paid_found``: payments DOKU reported that were new to
    the journal (appended). ``already_journaled``: VAs whose payment the journal already had
    (skipped without asking DOKU, or found so on append). ``unpaid``: DOKU reports no payment.
    ``errors``: failed calls and unusable answers. ``expired``: VAs dropped from the ledger past
    ``max_age`` (also counted as unpaid or errors). ``deferred``: VAs not asked this run (waiting
    for their next check, or DOKU unavailable).
    """

    checked: int = 0
    paid_found: int = 0
    already_journaled: int = 0
    unpaid: int = 0
    errors: int = 0
    expired: int = 0
    deferred: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class _Run:
    """The state of one run: its time, its counts, DOKU's unavailability streak."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.counts: Counter[str] = Counter()
        self.streak = 0

    @property
    def halted(self) -> bool:
        return self.streak >= _GIVE_UP_AFTER


class Reconciler:
    """Asks DOKU about ledger VAs answered between ``max_age`` and ``min_age`` seconds ago.

    ``batch`` is how many ledger entries are read at a time.
    """

    def __init__(
        self,
        ledger: InquiryLedger,
        journal: Journal,
        client: DokuClient,
        *,
        min_age: float = 60.0,
        max_age: float = 172_800.0,
        batch: int = 500,
    ) -> None:
        if min_age < 0 or max_age < min_age:
            raise ValueError("need 0 <= min_age <= max_age")
        if batch < 1:
            raise ValueError("batch must be positive")
        self.ledger = ledger
        self.journal = journal
        self.client = client
        self.min_age = min_age
        self.max_age = max_age
        self.batch = batch

    async def run_once(self, now: float | None = None) -> ReconcileReport:
        """One pass over the due ledger entries; ``now`` is a POSIX time (default: the clock)."""
        run = _Run(time.time() if now is None else now)
        newer_than = float("-inf")
        seen: set[str] = set()
        while not run.halted:
            page = await self.ledger.due(run.now - self.min_age, newer_than, self.batch)
            fresh = [entry for entry in page if entry.payment_code not in seen]
            for entry in fresh:
                seen.add(entry.payment_code)
                if run.halted:
                    run.counts["deferred"] += 1
                else:
                    await self._reconcile(entry, run)
            if not fresh or len(page) < self.batch:
                break
            # Inclusive bound plus ``seen``: entries answered at the same instant are not skipped.
            newer_than = page[-1].answered_at
        if run.halted:
            _log.warning("DOKU unavailable %d times in a row; the rest waits", _GIVE_UP_AFTER)
        return ReconcileReport(**run.counts)

    def _recheck_due(self, entry: LedgerEntry, now: float) -> bool:
        if entry.checked_at is None:
            return True
        return now - entry.checked_at >= max(self.min_age, entry.checked_at - entry.answered_at)

    async def _reconcile(self, entry: LedgerEntry, run: _Run) -> None:
        final = run.now - entry.answered_at > self.max_age
        if not final and not self._recheck_due(entry, run.now):
            run.counts["deferred"] += 1
            return
        if await self.journal.has_payment(entry.payment_code):
            await self.ledger.settle(entry.payment_code)
            run.counts["already_journaled"] += 1
            return
        try:
            request = CheckStatusRequest(
                entry.partner_service_id, entry.customer_no, entry.virtual_account_no
            )
        except FieldError as exc:
            # DOKU's check status cannot be asked about this VA, now or later.
            _log.warning("VA %s cannot be checked (%s); dropped", entry.payment_code, exc)
            await self.ledger.settle(entry.payment_code)
            run.counts["errors"] += 1
            return
        run.counts["checked"] += 1
        try:
            result = await self.client.check_status(request)
        except DokuError as exc:
            if exc.response_code in _NOT_FOUND:
                run.streak = 0
                await self._unpaid(entry, run, final)
                return
            run.streak = run.streak + 1 if isinstance(exc, DokuUnavailable) else 0
            _log.warning("check status of VA %s failed: %s", entry.payment_code, exc.message)
            await self._failed(entry, run, final)
            return
        except Exception as exc:  # never let one VA end the run; the type says enough
            run.streak = 0
            _log.warning("check status of VA %s failed: %s", entry.payment_code, type(exc).__name__)
            await self._failed(entry, run, final)
            return
        run.streak = 0
        if result.paid:
            await self._paid(entry, result, run, final)
        else:
            await self._unpaid(entry, run, final)

    async def _paid(
        self, entry: LedgerEntry, result: CheckStatusResult, run: _Run, final: bool
    ) -> None:
        try:
            body = notification_body(entry, result)
            payment = parse_payment(body)
        except (ValueError, SnapError) as exc:
            _log.warning(
                "DOKU reports VA %s paid, but the answer cannot be journaled: %s",
                entry.payment_code,
                exc,
            )
            await self._failed(entry, run, final)
            return
        record = JournalEntry(
            payment.payment_request_id,
            payment.payment_code,
            payment.partner_service_id.strip(),
            body,
            run.now,
        )
        _, new = await self.journal.append(record)
        await self.ledger.settle(entry.payment_code)
        if new:
            run.counts["paid_found"] += 1
            _log.warning(
                "payment %s of VA %s had no notification; journaled from check status",
                payment.payment_request_id,
                entry.payment_code,
            )
        else:
            run.counts["already_journaled"] += 1

    async def _unpaid(self, entry: LedgerEntry, run: _Run, final: bool) -> None:
        run.counts["unpaid"] += 1
        await self._keep_or_drop(entry, run, final)

    async def _failed(self, entry: LedgerEntry, run: _Run, final: bool) -> None:
        run.counts["errors"] += 1
        if final:
            _log.warning(
                "VA %s dropped after %.0fs without a usable answer from DOKU; check it by hand",
                entry.payment_code,
                self.max_age,
            )
        await self._keep_or_drop(entry, run, final)

    async def _keep_or_drop(self, entry: LedgerEntry, run: _Run, final: bool) -> None:
        if final:
            await self.ledger.settle(entry.payment_code)
            run.counts["expired"] += 1
        else:
            await self.ledger.record(dataclasses.replace(entry, checked_at=run.now))


def notification_body(entry: LedgerEntry, result: CheckStatusResult) -> dict[str, Any]:
    """The body DOKU would have posted (spec §8.2) for the payment ``result`` reports.

    The VA strings are the ledger's (verbatim from DOKU's inquiry); ``ValueError`` when DOKU's
    answer lacks what a notification needs: ``paymentRequestId``, the idempotency key, and
    ``paidAmount``.
    """
    if not result.payment_request_id:
        raise ValueError("no paymentRequestId in DOKU's answer")
    if result.paid_amount is None:
        raise ValueError("no paidAmount in DOKU's answer")
    data = _mapping(result.body.get("virtualAccountData"))
    body: dict[str, Any] = {
        "partnerServiceId": entry.partner_service_id,
        "customerNo": entry.customer_no,
        "virtualAccountNo": entry.virtual_account_no,
    }
    name = data.get("virtualAccountName")
    if isinstance(name, str):
        body["virtualAccountName"] = name
    trx_id = result.trx_id or entry.trx_id
    if trx_id:
        body["trxId"] = trx_id
    body["paymentRequestId"] = result.payment_request_id
    currency = _mapping(data.get("paidAmount")).get("currency")
    body["paidAmount"] = {
        "value": format_amount(result.paid_amount),
        "currency": currency if isinstance(currency, str) else "IDR",
    }
    moment = data.get("trxDateTime")
    if isinstance(moment, str):
        body["trxDateTime"] = moment
    inquiry_request_id = result.inquiry_request_id or entry.inquiry_request_id
    if inquiry_request_id:
        body["inquiryRequestId"] = inquiry_request_id
    channel = (
        _mapping(data.get("additionalInfo")).get("channel")
        or _mapping(result.body.get("additionalInfo")).get("channel")
        or entry.channel
    )
    info: dict[str, Any] = {"channel": channel} if isinstance(channel, str) else {}
    info["source"] = SOURCE
    body["additionalInfo"] = info
    return body


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
