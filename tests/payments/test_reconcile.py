"""Reconciliation against FakeDoku on a real socket, with both journals and both ledgers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import Bill, Inquiry, Payment
from gateway.config import CacheSettings, ClientSettings, Credentials, PaymentSettings
from gateway.doku.client import DokuClient
from gateway.doku.simulator import payment_body
from gateway.metrics import Metrics
from gateway.payments.delivery import Deliverer, payment_from_entry
from gateway.payments.journal.base import Journal, JournalEntry
from gateway.payments.journal.file import FileJournal
from gateway.payments.journal.redis import RedisJournal
from gateway.payments.ledger.base import InquiryLedger, LedgerEntry
from gateway.payments.ledger.file import FileLedger
from gateway.payments.ledger.redis import RedisLedger
from gateway.payments.reconcile import Reconciler, ReconcileReport, notification_body
from gateway.resolvers.dispatch import ResolverSet
from gateway.snap.payment import parse_payment
from gateway.snap.va import CHECK_STATUS, CheckStatusResult, CreateVaRequest
from gateway.testing import FakeDoku

from ..support import Keys, RedisServer

pytestmark = pytest.mark.anyio

PARTNER = "   88899"
CHANNEL = "VIRTUAL_ACCOUNT_BRI"
STATUS = CHECK_STATUS.path
T0 = 1_750_000_000.0


def ledger_entry(customer: str = "1001", at: float = T0) -> LedgerEntry:
    return LedgerEntry(
        payment_code=f"88899{customer}",
        partner_service_id=PARTNER,
        customer_no=customer,
        virtual_account_no=PARTNER + customer,
        inquiry_request_id=f"INQ-{customer}",
        trx_id=f"INV-{customer}",
        answered_at=at,
        channel=CHANNEL,
    )


@dataclass
class Store:
    journal: Journal
    ledger: InquiryLedger

    async def entries(self) -> list[JournalEntry]:
        found: list[JournalEntry] = []
        for shard in range(self.journal.shards):
            lease = await self.journal.read(shard, timeout=0.01)
            assert lease is not None
            found.extend(lease.entries)
        return found


@pytest.fixture(params=["file", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "file":
        pair = Store(FileJournal(tmp_path), FileLedger(tmp_path))
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        cache = CacheSettings(url=server.url)
        journal = RedisJournal.from_settings(cache, PaymentSettings(journal="redis"))
        pair = Store(journal, RedisLedger.from_settings(cache))
    yield pair
    await pair.ledger.close()
    await pair.journal.close()


@pytest.fixture
async def client(keys: Keys, url: str) -> AsyncIterator[DokuClient]:
    credentials = Credentials(
        keys.client_id,
        keys.client_secret,
        keys.doku.public_key(),
        keys.merchant,
        keys.merchant.public_key(),
    )
    settings = ClientSettings(base_url=url, timeout=0.5, connect_timeout=0.5, retries=0)
    async with DokuClient(credentials, settings, backoff=0.01) as doku:
        yield doku


def reconciler(store: Store, client: DokuClient, **options: Any) -> Reconciler:
    return Reconciler(store.ledger, store.journal, client, **options)


def real_notification(customer: str, payment_request_id: str) -> JournalEntry:
    """What the payment handler journals for DOKU's own notification."""
    body = payment_body(
        f"88899{customer}", PARTNER, "25000.00", payment_request_id=payment_request_id
    )
    payment = parse_payment(body)
    return JournalEntry(payment.payment_request_id, payment.payment_code, "88899", body, T0)


class Recording:
    """A resolver whose on_payment hook records what it is given."""

    def __init__(self) -> None:
        self.calls: list[Payment] = []

    async def resolve(self, inquiry: Inquiry) -> Bill:
        return Bill(name="Budi", amount=Decimal("25000.00"))

    async def on_payment(self, payment: Payment) -> None:
        self.calls.append(payment)


async def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# -- paid ---------------------------------------------------------------------------------------


async def test_a_paid_va_is_journaled_once_and_delivered(
    store: Store, client: DokuClient, fake: FakeDoku
) -> None:
    await store.ledger.record(ledger_entry("1001"))
    fake.mark_paid(
        PARTNER + "1001",
        Decimal("25000"),
        "PAY-1",
        inquiry_request_id="INQ-DOKU-1",
        trx_id="INV-1001",
    )
    report = await reconciler(store, client).run_once(T0 + 61)
    assert report == ReconcileReport(checked=1, paid_found=1)
    [journaled] = await store.entries()
    assert journaled.payment_request_id == "PAY-1"
    assert journaled.payment_code == "888991001"
    assert journaled.partner_prefix == "88899"
    assert journaled.body == {
        "partnerServiceId": PARTNER,
        "customerNo": "1001",
        "virtualAccountNo": PARTNER + "1001",
        "trxId": "INV-1001",
        "paymentRequestId": "PAY-1",
        "paidAmount": {"value": "25000.00", "currency": "IDR"},
        "inquiryRequestId": "INQ-DOKU-1",
        "additionalInfo": {"channel": CHANNEL, "source": "check-status"},
    }
    assert payment_from_entry(journaled).paid_amount == Decimal("25000.00")
    assert await store.journal.has_payment("888991001")
    assert await store.ledger.due(T0 + 1e6, 0.0, 10) == []

    # The same payment path: the background deliverer hands it to the hook, typed and unflagged.
    resolver = Recording()
    deliverer = Deliverer(
        store.journal, ResolverSet.single(resolver, "rec"), PaymentSettings(), Metrics()
    )
    await deliverer.start()
    try:
        await wait_for(lambda: len(resolver.calls) == 1)
    finally:
        await deliverer.stop()
    [payment] = resolver.calls
    assert (payment.payment_request_id, payment.channel, payment.flags) == ("PAY-1", CHANNEL, ())
    assert payment.body["additionalInfo"]["source"] == "check-status"
    assert await store.journal.is_delivered("PAY-1")


async def test_running_twice_or_a_late_notification_never_makes_two_entries(
    store: Store, client: DokuClient, fake: FakeDoku
) -> None:
    await store.ledger.record(ledger_entry("1001"))
    fake.mark_paid(PARTNER + "1001", Decimal("25000"), "PAY-1")
    runner = reconciler(store, client)
    assert (await runner.run_once(T0 + 61)).paid_found == 1
    assert await runner.run_once(T0 + 120) == ReconcileReport()
    # The gateway answers the VA again (a cache miss) before the bill shows paid: no new entry,
    # and DOKU is not asked, because the journal already has a payment of this VA.
    await store.ledger.record(ledger_entry("1001", at=T0 + 100))
    assert await runner.run_once(T0 + 200) == ReconcileReport(already_journaled=1)
    assert fake.requests[STATUS] == 1
    # DOKU's own notification arrives late: the journal finds the reconciled entry.
    stored, new = await store.journal.append(real_notification("1001", "PAY-1"))
    assert not new
    assert stored.body["additionalInfo"]["source"] == "check-status"
    assert [e.payment_request_id for e in await store.entries()] == ["PAY-1"]


async def test_a_va_paid_by_a_real_notification_is_not_asked_about(
    store: Store, client: DokuClient, fake: FakeDoku
) -> None:
    await store.ledger.record(ledger_entry("1001"))
    await store.ledger.record(ledger_entry("1002"))
    await store.journal.append(real_notification("1001", "PAY-REAL"))
    fake.mark_paid(PARTNER + "1002", Decimal("25000"), "PAY-2")
    report = await reconciler(store, client).run_once(T0 + 61)
    assert report == ReconcileReport(checked=1, paid_found=1, already_journaled=1)
    assert fake.requests[STATUS] == 1
    sent = [r for r in fake.received if r.path == STATUS]
    assert b'"customerNo":"1002"' in sent[0].body
    assert sorted(e.payment_request_id for e in await store.entries()) == ["PAY-2", "PAY-REAL"]
    assert await store.ledger.due(T0 + 1e6, 0.0, 10) == []


async def test_doku_paid_without_a_payment_request_id_is_an_error_not_an_entry(
    store: Store, client: DokuClient, fake: FakeDoku
) -> None:
    await store.ledger.record(ledger_entry("1001"))
    fake.mark_paid(PARTNER + "1001", Decimal("25000"), "")
    report = await reconciler(store, client).run_once(T0 + 61)
    assert report == ReconcileReport(checked=1, errors=1)
    assert await store.entries() == []
    [kept] = await store.ledger.due(T0 + 1e6, 0.0, 10)
    assert kept.checked_at == T0 + 61


# -- unpaid and expiry --------------------------------------------------------------------------


async def test_unpaid_is_asked_again_later_then_dropped_after_max_age(
    store: Store, client: DokuClient, fake: FakeDoku
) -> None:
    await client.create_va(
        CreateVaRequest(
            PARTNER, "1001", PARTNER + "1001", "Budi", "INV-1001", Decimal("25000"), CHANNEL
        )
    )
    await store.ledger.record(ledger_entry("1001"))  # DOKU answers Pending
    await store.ledger.record(ledger_entry("1002"))  # DOKU answers 4042601 (unknown VA)
    await store.ledger.record(ledger_entry("1003", at=T0 + 30))  # too recent to ask
    runner = reconciler(store, client, max_age=3600.0)

    assert await runner.run_once(T0 + 61) == ReconcileReport(checked=2, unpaid=2)
    kept = await store.ledger.due(T0 + 1e6, 0.0, 10)
    assert [(e.customer_no, e.checked_at) for e in kept] == [
        ("1001", T0 + 61),
        ("1002", T0 + 61),
        ("1003", None),
    ]
    # Asked again only after waiting as long as they were old when last asked (61 s).
    assert await runner.run_once(T0 + 100) == ReconcileReport(checked=1, unpaid=1, deferred=2)
    assert fake.requests[STATUS] == 3
    assert await runner.run_once(T0 + 122) == ReconcileReport(checked=2, unpaid=2, deferred=1)

    # Past max_age: a last check, then dropped; 1003 (answered 30 s later) is not yet.
    report = await runner.run_once(T0 + 3601)
    assert report == ReconcileReport(checked=3, unpaid=3, expired=2)
    assert [e.customer_no for e in await store.ledger.due(T0 + 1e6, 0.0, 10)] == ["1003"]
    assert report.as_dict()["expired"] == 2


async def test_a_payment_found_on_the_last_check(
    store: Store, client: DokuClient, fake: FakeDoku
) -> None:
    entry = ledger_entry("1001")
    await store.ledger.record(entry)
    runner = reconciler(store, client, max_age=3600.0)
    assert (await runner.run_once(T0 + 2000)).unpaid == 1
    fake.mark_paid(PARTNER + "1001", Decimal("25000"), "PAY-LATE")
    # Not due by the doubling wait until T0 + 4000, but past max_age it gets its last check.
    assert await runner.run_once(T0 + 3700) == ReconcileReport(checked=1, paid_found=1)
    assert [e.payment_request_id for e in await store.entries()] == ["PAY-LATE"]


# -- DOKU failing -------------------------------------------------------------------------------


async def test_doku_5xx_is_counted_and_the_va_kept(
    store: Store, client: DokuClient, fake: FakeDoku
) -> None:
    await store.ledger.record(ledger_entry("1001"))
    fake.mark_paid(PARTNER + "1001", Decimal("25000"), "PAY-1")
    fake.fail_next(1, 503, path=STATUS)
    runner = reconciler(store, client)
    assert await runner.run_once(T0 + 61) == ReconcileReport(checked=1, errors=1)
    assert await store.entries() == []
    assert len(await store.ledger.due(T0 + 1e6, 0.0, 10)) == 1
    assert await runner.run_once(T0 + 122) == ReconcileReport(checked=1, paid_found=1)


async def test_a_stalling_doku_stops_the_run_after_three_failures(
    store: Store, client: DokuClient, fake: FakeDoku, caplog: pytest.LogCaptureFixture
) -> None:
    for customer in ("1001", "1002", "1003", "1004", "1005"):
        await store.ledger.record(ledger_entry(customer))
    await client.access_token()
    fake.stall_seconds = 30
    started = time.monotonic()
    report = await reconciler(store, client).run_once(T0 + 61)
    assert time.monotonic() - started < 5.0
    assert report == ReconcileReport(checked=3, errors=3, deferred=2)
    assert fake.requests[STATUS] == 3
    assert "ReadTimeout" in caplog.text
    assert len(await store.ledger.due(T0 + 1e6, 0.0, 10)) == 5


# -- the notification body -----------------------------------------------------------------------


def status_answer(**data: Any) -> CheckStatusResult:
    document: dict[str, Any] = {
        "partnerServiceId": PARTNER,
        "customerNo": "1001",
        "virtualAccountNo": PARTNER + "1001",
        "paymentFlagStatus": "00",
        "paymentRequestId": "PAY-9",
        "paidAmount": {"value": "25000.5", "currency": "IDR"},
    }
    document.update(data)
    body = {"responseCode": "2002600", "responseMessage": "Successful"}
    return CheckStatusResult.from_body({**body, "virtualAccountData": document})


def test_notification_body_takes_what_doku_reports() -> None:
    answer = status_answer(
        trxId="INV-DOKU",
        trxDateTime="2025-06-01T10:00:00+07:00",
        virtualAccountName="Budi Santoso",
        additionalInfo={"channel": "VIRTUAL_ACCOUNT_BNI"},
    )
    body = notification_body(ledger_entry("1001"), answer)
    assert list(body) == [
        "partnerServiceId",
        "customerNo",
        "virtualAccountNo",
        "virtualAccountName",
        "trxId",
        "paymentRequestId",
        "paidAmount",
        "trxDateTime",
        "inquiryRequestId",
        "additionalInfo",
    ]
    assert body["paidAmount"] == {"value": "25000.50", "currency": "IDR"}
    assert body["trxId"] == "INV-DOKU"
    assert body["inquiryRequestId"] == "INQ-1001"  # DOKU did not say: the ledger's inquiry
    assert body["additionalInfo"] == {"channel": "VIRTUAL_ACCOUNT_BNI", "source": "check-status"}
    payment = parse_payment(body)
    assert (payment.trx_date_time, payment.virtual_account_name) == (
        "2025-06-01T10:00:00+07:00",
        "Budi Santoso",
    )


def test_notification_body_needs_a_payment_request_id_and_an_amount() -> None:
    with pytest.raises(ValueError, match="paymentRequestId"):
        notification_body(ledger_entry(), status_answer(paymentRequestId=None))
    with pytest.raises(ValueError, match="paidAmount"):
        notification_body(ledger_entry(), status_answer(paidAmount=None))


def test_reconciler_refuses_nonsense_ages(tmp_path: Path) -> None:
    ledger, journal = FileLedger(tmp_path), FileJournal(tmp_path)
    credentials: Any = None
    with pytest.raises(ValueError, match="min_age"):
        Reconciler(ledger, journal, credentials, min_age=120.0, max_age=60.0)
