"""Payment notifications end to end: real uvicorn, real signatures, the real file journal."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from gateway import Bill, BillStatus, Inquiry, Payment
from gateway.doku.simulator import DokuSimulator, SignedRequest, inquiry_body, payment_body
from gateway.payments.journal.base import JournalEntry
from gateway.payments.journal.file import FileJournal
from gateway.resolvers.demo import DemoResolver
from gateway.resolvers.dispatch import ResolverSet
from gateway.snap.fields import parse_json
from gateway.snap.signature import SymmetricSigner
from gateway.web.app import create_app

from ...payments.strategies import encode, notifications
from ...support import Keys, make_settings, poll, running_server

pytestmark = pytest.mark.anyio

CODE = "8889900001234"


class Recording:
    """A resolver whose on_payment hook records calls and can be told to fail."""

    def __init__(self, failures: int = 0, bill: Any = None) -> None:
        self.calls: list[Payment] = []
        self.failures = failures
        self.bill = bill or Bill(name="Budi", amount=Decimal("25000.00"))

    async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
        result: Bill | BillStatus = self.bill
        return result

    async def on_payment(self, payment: Payment) -> None:
        self.calls.append(payment)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("merchant database unavailable")


async def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def journal_lines(directory: str, name: str = "payments.jsonl") -> list[dict[str, Any]]:
    """The records of a journal file; of payments.jsonl its entries (not delivery records)."""
    path = Path(directory) / name
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [line for line in lines if "done" not in line]


def delivered(directory: str) -> set[str]:
    """paymentRequestIds with a delivery record in the file journal."""
    path = Path(directory) / "payments.jsonl"
    lines = [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return {line["done"] for line in lines if "done" in line}


async def post(
    http: httpx.AsyncClient,
    simulator: DokuSimulator,
    token: str,
    document: dict[str, Any],
    **kwargs: Any,
) -> httpx.Response:
    return await simulator.send(http, simulator.payment_request(token, document, **kwargs))


async def test_demo_flow_pay_then_already_paid(keys: Keys, simulator: DokuSimulator) -> None:
    settings = make_settings(keys)
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            first = await simulator.send(
                http, simulator.inquiry_request(token, inquiry_body(CODE, "   88899"))
            )
            assert first.json()["responseCode"] == "2002400"
            document = payment_body(CODE, "   88899", "25000.00", payment_request_id="PR-1")
            responses = await asyncio.gather(
                *(post(http, simulator, token, document) for _ in range(5))
            )
            assert [r.status_code for r in responses] == [200] * 5
            assert len({r.content for r in responses}) == 1
            ack = responses[0].json()
            assert ack["responseCode"] == "2002500"
            assert ack["virtualAccountData"]["paymentRequestId"] == "PR-1"
            assert ack["virtualAccountData"]["virtualAccountNo"] == "   8889900001234"
            lines = journal_lines(settings.payment.journal_dir)
            assert len(lines) == 1 and lines[0]["prid"] == "PR-1"

            async def paid() -> bool:
                again = await simulator.send(
                    http, simulator.inquiry_request(token, inquiry_body(CODE, "   88899"))
                )
                return bool(again.json()["responseCode"] == "4042414")

            deadline = time.monotonic() + 10
            while not await paid():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            # "Already paid" comes from the cache at once; the hook's delivery may still be
            # running, so wait for it before reading the counters.
            delivered = 'doku_gateway_payment_deliveries_total{outcome="delivered"} 1.0'
            metrics = (await http.get("/metrics")).text
            while delivered not in metrics:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
                metrics = (await http.get("/metrics")).text
    assert 'doku_gateway_payment_notifications_total{result="new"} 1.0' in metrics
    assert 'doku_gateway_payment_notifications_total{result="duplicate"} 4.0' in metrics
    assert 'doku_gateway_payment_deliveries_total{outcome="delivered"} 1.0' in metrics


async def test_hook_sees_one_typed_payment(keys: Keys, simulator: DokuSimulator) -> None:
    resolver = Recording()
    app = create_app(make_settings(keys), resolvers=ResolverSet.single(resolver, "rec"))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            document = payment_body(CODE, "   88899", "25000.00", payment_request_id="PR-2")
            del document["additionalInfo"]["sourceBankName"]
            document["additionalInfo"]["souceBankName"] = "BTN (PHP spelling)"
            for _ in range(3):
                assert (await post(http, simulator, token, document)).status_code == 200
            await wait_for(lambda: len(resolver.calls) == 1)
            await asyncio.sleep(0.2)  # give a wrongful second delivery the chance to show
    assert len(resolver.calls) == 1
    payment = resolver.calls[0]
    assert payment.paid_amount == Decimal("25000.00")
    assert payment.payment_request_id == "PR-2"
    assert payment.partner_service_id == "   88899"
    assert payment.payment_code == CODE
    assert payment.source_bank_name == "BTN (PHP spelling)"
    assert payment.trx_id == "DEMO-8889900001234"
    assert payment.flags == ()
    assert payment.body["paymentRequestId"] == "PR-2"


async def test_the_delivery_uses_the_payment_parsed_on_acceptance(
    keys: Keys, simulator: DokuSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notification is parsed once: its delivery in the same process does not parse the
    journaled body again, and the hook gets what parsing it would give."""
    from gateway.payments import delivery
    from gateway.snap.payment import parse_payment

    parsed_again: list[str] = []
    original = delivery.payment_from_entry

    def counting(entry: JournalEntry) -> Payment:
        parsed_again.append(entry.payment_request_id)
        return original(entry)

    monkeypatch.setattr(delivery, "payment_from_entry", counting)
    resolver = Recording()
    app = create_app(make_settings(keys), resolvers=ResolverSet.single(resolver, "rec"))
    documents = [
        payment_body(CODE, "   88899", "25000.00", payment_request_id=f"PR-ONCE-{n}")
        for n in range(3)
    ]
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            for document in documents:
                assert (await post(http, simulator, token, document)).status_code == 200
            await wait_for(lambda: len(resolver.calls) == 3)
    assert parsed_again == []
    assert resolver.calls == [parse_payment(document) for document in documents]


@pytest.mark.parametrize(
    ("bill", "amount", "flags"),
    [
        (Bill(name="B", amount=Decimal("25000.00")), "20000.00", ("amount_differs",)),
        (
            Bill(
                name="B",
                amount=Decimal("0.00"),
                trx_type="O",
                min_amount=Decimal("10000.00"),
                max_amount=Decimal("50000.00"),
            ),
            "60000.00",
            ("above_max",),
        ),
        (
            Bill(name="B", amount=Decimal("0.00"), trx_type="V", min_amount=Decimal("10000.00")),
            "5000.00",
            ("below_min",),
        ),
        (BillStatus.ALREADY_PAID, "25000.00", ("bill_already_paid",)),
    ],
)
async def test_rule_breaking_payment_is_flagged_not_dropped(
    keys: Keys, simulator: DokuSimulator, bill: Any, amount: str, flags: tuple[str, ...]
) -> None:
    resolver = Recording(bill=bill)
    app = create_app(make_settings(keys), resolvers=ResolverSet.single(resolver, "rec"))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            response = await post(http, simulator, token, payment_body(CODE, "   88899", amount))
            await wait_for(lambda: len(resolver.calls) == 1)
            metrics = (await http.get("/metrics")).text
    assert response.json()["responseCode"] == "2002500"
    assert resolver.calls[0].flags == flags
    assert f'doku_gateway_payments_flagged_total{{flag="{flags[0]}"}} 1.0' in metrics


async def test_failing_hook_is_retried_then_delivered(keys: Keys, simulator: DokuSimulator) -> None:
    resolver = Recording(failures=2)
    settings = make_settings(keys, payment={"backoff_initial": 0.01})
    app = create_app(settings, resolvers=ResolverSet.single(resolver, "rec"))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            response = await post(http, simulator, token, payment_body(CODE, "   88899", "1.00"))
            assert response.json()["responseCode"] == "2002500"
            await wait_for(lambda: len(resolver.calls) == 3)
            await wait_for(lambda: len(delivered(settings.payment.journal_dir)) == 1)
    assert len(resolver.calls) == 3


async def test_dead_letter_then_replay_from_the_cli(
    keys: Keys, simulator: DokuSimulator, tmp_path: Path
) -> None:
    import subprocess
    import sys

    resolver = Recording(failures=3)
    settings = make_settings(keys, payment={"backoff_initial": 0.01, "max_attempts": 3})
    directory = settings.payment.journal_dir
    app = create_app(settings, resolvers=ResolverSet.single(resolver, "rec"))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            await post(
                http,
                simulator,
                token,
                payment_body(CODE, "   88899", "1.00", payment_request_id="PR-DEAD"),
            )
            await wait_for(lambda: len(journal_lines(directory, "dead.jsonl")) == 1)
            deadline = time.monotonic() + 10
            while "doku_gateway_payment_dead_letters 1.0" not in (await http.get("/metrics")).text:
                assert time.monotonic() < deadline, "the dead-letter gauge never moved"
                await asyncio.sleep(0.05)
            demo_dir = tmp_path / "demo"
            demo_dir.mkdir()
            (demo_dir / "journal").symlink_to(directory)
            listed = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "payments",
                    "dead-letters",
                    "--demo-dir",
                    str(demo_dir),
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
            letter = json.loads(listed.stdout.splitlines()[0])
            assert letter["paymentRequestId"] == "PR-DEAD" and letter["attempts"] == 3
            assert "ConnectionError" in letter["error"]
            replayed = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "payments",
                    "replay",
                    letter["id"],
                    "--demo-dir",
                    str(demo_dir),
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert replayed.returncode == 0, replayed.stderr
            await wait_for(lambda: len(resolver.calls) == 4)
    assert journal_lines(directory, "dead.jsonl") == []


async def test_undelivered_payments_survive_a_restart(keys: Keys, simulator: DokuSimulator) -> None:
    settings = make_settings(keys, payment={"backoff_initial": 5})
    failing = Recording(failures=100)
    with running_server(create_app(settings, resolvers=ResolverSet.single(failing))) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            await post(
                http,
                simulator,
                token,
                payment_body(CODE, "   88899", "1.00", payment_request_id="PR-R"),
            )
            await wait_for(lambda: len(failing.calls) == 1)
    healthy = Recording()
    with running_server(create_app(settings, resolvers=ResolverSet.single(healthy))):
        await wait_for(lambda: len(healthy.calls) == 1)
    assert healthy.calls[0].payment_request_id == "PR-R"


async def test_journal_failure_is_5xx_and_not_acknowledged(
    keys: Keys, simulator: DokuSimulator
) -> None:
    settings = make_settings(keys)
    directory = Path(settings.payment.journal_dir)
    app = create_app(settings)
    with running_server(app) as url:
        # Replace the journal directory with a file: every append now fails for real.
        await asyncio.to_thread(shutil.rmtree, directory)
        await asyncio.to_thread(directory.write_text, "not a directory")
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            request = simulator.payment_request(
                token, payment_body(CODE, "   88899", "1.00"), external_id="ext-journal"
            )
            response = await simulator.send(http, request)
            await asyncio.to_thread(directory.unlink)
            await asyncio.to_thread(directory.mkdir)
            retry = await simulator.send(http, request)  # the 5xx released the X-EXTERNAL-ID
    assert response.status_code == 500
    assert response.json()["responseCode"] == "5002501"
    assert retry.json()["responseCode"] == "2002500"


async def test_sync_mode_acks_after_the_hook(keys: Keys, simulator: DokuSimulator) -> None:
    resolver = Recording(failures=1)
    settings = make_settings(keys, payment={"delivery": "sync", "backoff_initial": 30})
    app = create_app(settings, resolvers=ResolverSet.single(resolver, "rec"))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            document = payment_body(CODE, "   88899", "1.00", payment_request_id="PR-S")
            failed = await post(http, simulator, token, document)
            calls_after_failure = len(resolver.calls)
            again = await post(http, simulator, token, document)
    assert failed.status_code == 500 and failed.json()["responseCode"] == "5002500"
    assert calls_after_failure >= 1
    assert again.json()["responseCode"] == "2002500"
    assert resolver.failures == 0


@pytest.mark.parametrize(("configured", "expected"), [(None, "4012501"), ("4012701", "4012701")])
async def test_bad_token_code_is_configurable(
    keys: Keys, simulator: DokuSimulator, configured: str | None, expected: str
) -> None:
    payment = {"invalid_token_code": configured} if configured else {}
    settings = make_settings(keys, payment=payment)
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            request = simulator.payment_request(
                "not-a-token", payment_body(CODE, "   88899", "1.00")
            )
            response = await simulator.send(http, request)
    assert response.status_code == 401
    assert response.json()["responseCode"] == expected


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"paymentRequestId": None}, "4002502", "paymentRequestId"),
        ({"paidAmount": None}, "4002502", "paidAmount"),
        ({"paidAmount": {"value": 25000.0, "currency": "IDR"}}, "4002501", "paidAmount.value"),
        ({"paidAmount": {"value": "25000", "currency": "IDR"}}, "4002501", "paidAmount.value"),
        ({"paidAmount": {"value": "1.00", "currency": "USD"}}, "4002501", "paidAmount.currency"),
        ({"virtualAccountNo": "   88899ABC"}, "4002501", "virtualAccountNo"),
    ],
)
async def test_bad_notification_fields(
    keys: Keys, simulator: DokuSimulator, change: dict[str, Any], code: str, field: str
) -> None:
    resolver = Recording()
    settings = make_settings(keys)
    app = create_app(settings, resolvers=ResolverSet.single(resolver))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            document = payment_body(CODE, "   88899", "1.00")
            for key, value in change.items():
                if value is None:
                    del document[key]
                else:
                    document[key] = value
            response = await post(http, simulator, token, document)
    assert response.status_code == 400
    assert response.json()["responseCode"] == code
    assert response.json()["responseMessage"].endswith(f"{{{field}}}")
    assert journal_lines(settings.payment.journal_dir) == []
    assert resolver.calls == []


async def test_reusable_bill_stays_cached_after_payment(
    keys: Keys, simulator: DokuSimulator
) -> None:
    class Reusable(Recording):
        resolves = 0

        async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
            self.resolves += 1
            return Bill(name="Top up", amount=Decimal("0.00"), trx_type="O", reusable=True)

    resolver = Reusable()
    app = create_app(make_settings(keys), resolvers=ResolverSet.single(resolver))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            inquiry = inquiry_body(CODE, "   88899")
            await simulator.send(http, simulator.inquiry_request(token, inquiry))
            await post(http, simulator, token, payment_body(CODE, "   88899", "5.00"))
            await wait_for(lambda: len(resolver.calls) == 1)
            before = resolver.resolves
            await simulator.send(http, simulator.inquiry_request(token, inquiry))
    assert resolver.resolves == before  # still served from the cache


async def test_demo_resolver_remembers_only_closed_bills() -> None:
    from types import MappingProxyType

    from gateway.snap.payment import parse_payment

    demo = DemoResolver()
    closed = parse_payment(payment_body(CODE, "   88899", "25000.00"))
    open_document = payment_body("8889911600001", "   88899", "50000.00")
    open_document["virtualAccountTrxType"] = "O"
    await demo.on_payment(parse_payment(open_document))
    await demo.on_payment(closed)
    assert set(demo.paid) == {CODE}
    inquiry = Inquiry(
        "   88899", "00001234", "   8889900001234", CODE, "r", "C", MappingProxyType({})
    )
    assert await demo.resolve(inquiry) is BillStatus.ALREADY_PAID


async def test_paid_closed_bill_is_not_offered_again_while_the_hook_runs(
    keys: Keys, simulator: DokuSimulator
) -> None:
    class SlowHook(Recording):
        paid = False

        async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
            return BillStatus.ALREADY_PAID if self.paid else Bill(name="B", amount=Decimal("5.00"))

        async def on_payment(self, payment: Payment) -> None:
            await asyncio.sleep(0.5)
            self.paid = True
            self.calls.append(payment)

    resolver = SlowHook()
    app = create_app(make_settings(keys), resolvers=ResolverSet.single(resolver))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            inquiry = inquiry_body(CODE, "   88899")
            before = await simulator.send(http, simulator.inquiry_request(token, inquiry))
            await post(http, simulator, token, payment_body(CODE, "   88899", "5.00"))
            during = await simulator.send(http, simulator.inquiry_request(token, inquiry))
            await wait_for(lambda: len(resolver.calls) == 1)
            after = await simulator.send(http, simulator.inquiry_request(token, inquiry))
    assert before.json()["responseCode"] == "2002400"
    assert during.json()["responseCode"] == "4042414"
    assert after.json()["responseCode"] == "4042414"


async def test_delivery_survives_journal_errors(tmp_path: Path) -> None:
    from gateway.config import PaymentSettings
    from gateway.metrics import Metrics
    from gateway.payments.delivery import Deliverer
    from gateway.payments.journal.base import JournalEntry
    from gateway.payments.journal.file import FileJournal

    class Flaky(FileJournal):
        failures = 1

        async def done(self, shard: int, entry: JournalEntry) -> None:
            if self.failures:
                self.failures -= 1
                raise OSError("disk full")
            await super().done(shard, entry)

    journal = Flaky(tmp_path)
    resolver = Recording()
    deliverer = Deliverer(journal, ResolverSet.single(resolver), PaymentSettings(), Metrics())
    for index in range(3):
        document = payment_body(CODE, "   88899", "1.00", payment_request_id=f"P{index}")
        await journal.append(JournalEntry(f"P{index}", CODE, "88899", document, time.time()))
    await deliverer.start()
    try:
        await wait_for(lambda: len(resolver.calls) == 3, timeout=15)
    finally:
        await deliverer.stop()
    assert [p.payment_request_id for p in resolver.calls] == ["P0", "P1", "P2"]


def resigned(request: SignedRequest, raw: bytes, keys: Keys, token: str) -> SignedRequest:
    """``request`` with another body, signed as a sender would sign those bytes."""
    signature = SymmetricSigner.from_secret(keys.client_secret).sign(
        "POST", request.path, token, raw, request.headers["X-TIMESTAMP"]
    )
    return SignedRequest(request.path, {**request.headers, "X-SIGNATURE": signature}, raw)


@pytest.mark.parametrize("encoded", ["escaped", "raw bytes"])
async def test_a_lone_surrogate_payment_request_id_is_delivered_and_blocks_nothing(
    keys: Keys, simulator: DokuSimulator, encoded: str
) -> None:
    odd = "PR-\ud800"
    resolver = Recording()
    settings = make_settings(keys)
    with running_server(create_app(settings, resolvers=ResolverSet.single(resolver))) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            document = payment_body(CODE, "   88899", "25000.00", payment_request_id=odd)
            # DOKU's Python SDK escapes it ("\ud800", valid JSON); a sender may also put the
            # surrogate's own UTF-8-style bytes in the body, which the parser accepts too.
            request = simulator.payment_request(token, document, ensure_ascii=True)
            if encoded == "raw bytes":
                raw = request.body.replace(b"\\ud800", b"\xed\xa0\x80")
                request = resigned(request, raw, keys, token)
            first = await simulator.send(http, request)
            later = payment_body(CODE, "   88899", "25000.00", payment_request_id="PR-LATER")
            second = await post(http, simulator, token, later)
            await wait_for(lambda: len(resolver.calls) == 2)
            await asyncio.sleep(0.2)  # room for a wrongful repeat to show
    assert first.json()["responseCode"] == "2002500"
    assert first.json()["virtualAccountData"]["paymentRequestId"] == odd
    assert second.json()["responseCode"] == "2002500"
    assert [p.payment_request_id for p in resolver.calls] == [odd, "PR-LATER"]
    after_restart = Recording()
    app = create_app(settings, resolvers=ResolverSet.single(after_restart))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            retry = simulator.payment_request(token, document, ensure_ascii=True)
            again = await simulator.send(http, retry)  # DOKU's retry: a duplicate
            await asyncio.sleep(0.3)
    assert again.json()["responseCode"] == "2002500"
    assert after_restart.calls == []


async def test_a_newline_in_a_payment_request_id_is_delivered_once_across_restarts(
    keys: Keys, simulator: DokuSimulator
) -> None:
    settings = make_settings(keys)
    document = payment_body(CODE, "   88899", "25000.00", payment_request_id="PR-1\nPR-2")

    async def notify(first_run: bool) -> list[Payment]:
        resolver = Recording()
        with running_server(create_app(settings, resolvers=ResolverSet.single(resolver))) as url:
            async with httpx.AsyncClient(base_url=url) as http:
                token = await simulator.get_token(http)
                response = await post(http, simulator, token, document)
                if first_run:
                    await wait_for(lambda: len(resolver.calls) == 1)
                await asyncio.sleep(0.3)
        assert response.json()["responseCode"] == "2002500"
        return resolver.calls

    assert len(await notify(first_run=True)) == 1
    assert await notify(first_run=False) == []  # DOKU's retry after a restart: no second call


def depth_of(value: Any) -> int:
    """Nesting depth of nested lists, without recursion (the test's stack is not the server's)."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def nest(request: SignedRequest, depth: int, keys: Keys, token: str) -> SignedRequest:
    """``request`` with ``additionalInfo.deep`` nested ``depth`` lists deep, signed again."""
    nested = b"[" * depth + b"]" * depth
    raw = request.body.replace(b'"additionalInfo":{', b'"additionalInfo":{"deep":' + nested + b",")
    return resigned(request, raw, keys, token)


def code_of(response: httpx.Response) -> str:
    """The responseCode, without parsing an answer that may echo the nesting."""
    return response.content.partition(b'"responseCode":"')[2][:7].decode()


async def test_deeply_nested_json_is_never_a_5xx(keys: Keys, simulator: DokuSimulator) -> None:
    resolver = Recording()
    # The deepest limit the gateway allows: every body is either journaled whole or refused.
    settings = make_settings(keys, http={"max_json_depth": 512})
    acknowledged: dict[str, int] = {}
    with running_server(create_app(settings, resolvers=ResolverSet.single(resolver))) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            # Up to the limit and past it, to where Python's own parser gives up.
            for depth in (10, 200, *range(500, 520), 900, 1200, 5000):
                inquiry = simulator.inquiry_request(token, inquiry_body(CODE, "   88899"))
                probe = await simulator.send(http, nest(inquiry, depth, keys, token))
                assert probe.status_code < 500, (depth, probe.text[:200])
                prid = f"PR-DEEP-{depth}"
                document = payment_body(CODE, "   88899", "25000.00", payment_request_id=prid)
                request = nest(simulator.payment_request(token, document), depth, keys, token)
                response = await simulator.send(http, request)
                assert response.status_code in (200, 400), (depth, response.text[:200])
                assert code_of(response) == ("2002500" if response.is_success else "4002501")
                if response.is_success:
                    acknowledged[prid] = depth
            await wait_for(lambda: len(resolver.calls) == len(acknowledged))
    # Journaled up to the limit (the body is nested within additionalInfo), refused past it.
    assert 500 <= max(acknowledged.values()) <= 512
    for payment in resolver.calls:
        deep = payment.body["additionalInfo"]["deep"]
        assert depth_of(deep) == acknowledged[payment.payment_request_id]
    after_restart = Recording()
    with running_server(create_app(settings, resolvers=ResolverSet.single(after_restart))):
        await asyncio.sleep(0.3)
    assert after_restart.calls == []  # every entry read back and known as delivered


def test_any_value_in_any_field_is_refused_or_delivered_unchanged(
    keys: Keys, simulator: DokuSimulator
) -> None:
    """Through the real server: a SNAP 4xx, or the ack, the hook called once with the body as
    sent, and after a restart the same entry read back and not delivered again."""
    resolver = Recording()
    settings = make_settings(keys)
    sent: dict[str, dict[str, Any]] = {}
    refused: list[str] = []
    app = create_app(settings, resolvers=ResolverSet.single(resolver))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        token = asyncio.run(get_token(simulator, url))

        @examples(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(notification=notifications(), escaped=st.booleans())
        def check(notification: tuple[dict[str, Any], bytes], escaped: bool) -> None:
            document, _ = notification
            prid = document.get("paymentRequestId")
            if isinstance(prid, str):  # one payment per example: never a duplicate
                document["paymentRequestId"] = prid = f"{len(sent) + len(refused)}~{prid}"
            raw = encode(document, escaped=escaped)
            base = simulator.payment_request(token, {}, ensure_ascii=True)
            request = resigned(base, raw, keys, token)
            response = http.post(request.path, headers=request.headers, content=request.body)
            if response.status_code == 400:
                assert code_of(response).startswith("4002")
                refused.append(str(prid))
                return
            assert code_of(response) == "2002500", response.text
            # What the bytes say (an escaped surrogate pair is one character) is the payment.
            parsed = parse_json(raw)
            prid = parsed["paymentRequestId"]
            sent[prid] = parsed
            poll(lambda: any(p.payment_request_id == prid for p in resolver.calls))

        check()
    assert sent and refused, (len(sent), len(refused))
    time.sleep(0.3)  # room for a wrongful repeat to show
    delivered = {p.payment_request_id: dict(p.body) for p in resolver.calls}
    assert delivered == sent and len(resolver.calls) == len(sent)  # once each, unchanged
    journal = FileJournal(settings.payment.journal_dir)
    for prid in refused:
        assert asyncio.run(journal.find(prid)) is None
    after_restart = Recording()
    with running_server(create_app(settings, resolvers=ResolverSet.single(after_restart))):
        time.sleep(0.3)
    assert after_restart.calls == []
    for prid, document in sent.items():
        found = asyncio.run(journal.find(prid))
        assert found is not None and found.body == document
        assert asyncio.run(journal.is_delivered(prid))


async def get_token(simulator: DokuSimulator, url: str) -> str:
    async with httpx.AsyncClient(base_url=url) as http:
        return await simulator.get_token(http)
