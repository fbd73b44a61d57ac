"""DokuClient against FakeDoku served by a real uvicorn on a loopback port."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.config import ClientSettings, Credentials
from gateway.doku.client import TOKEN_PATH, DokuClient, new_external_id
from gateway.exceptions import DokuError, DokuProtocolError, DokuUnavailable
from gateway.snap.canonical import minify
from gateway.snap.keys import generate_private_key
from gateway.snap.va import (
    CHECK_STATUS,
    CREATE_VA,
    DELETE_VA,
    UPDATE_VA,
    CheckStatusRequest,
    CreateVaRequest,
    DeleteVaRequest,
    UpdateVaRequest,
)
from gateway.testing import FakeDoku, create_fake_doku

from ..support import Keys, free_port, make_settings, running_server

pytestmark = pytest.mark.anyio

PARTNER = "   88899"
CHANNEL = "VIRTUAL_ACCOUNT_BRI"
STATUS = CHECK_STATUS.path


def va_no(customer: str) -> str:
    return PARTNER + customer


def status_request(customer: str = "1001") -> CheckStatusRequest:
    return CheckStatusRequest(PARTNER, customer, va_no(customer))


def create_request(customer: str = "1001", **changes: Any) -> CreateVaRequest:
    fields: dict[str, Any] = {
        "name": "Budi Santoso",
        "trx_id": f"INV-{customer}",
        "amount": Decimal("25000"),
        "channel": CHANNEL,
    }
    fields.update(changes)
    return CreateVaRequest(PARTNER, customer, va_no(customer), **fields)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def credentials(keys: Keys) -> Credentials:
    return Credentials(
        keys.client_id,
        keys.client_secret,
        keys.doku.public_key(),
        keys.merchant,
        keys.merchant.public_key(),
    )


def make_client(
    credentials: Credentials, url: str, *, clock: Clock | None = None, **settings: Any
) -> DokuClient:
    options: dict[str, Any] = {"base_url": url, "timeout": 5.0, "connect_timeout": 2.0}
    options.update(settings)
    return DokuClient(
        credentials, ClientSettings(**options), clock=clock or time.monotonic, backoff=0.01
    )


# -- token ------------------------------------------------------------------------------------


async def test_token_is_fetched_once_for_concurrent_callers_and_refreshed_once(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    fake.mark_paid(va_no("1001"), Decimal("25000"), "PAY-1")
    clock = Clock()
    async with make_client(credentials, url, clock=clock) as client:
        results = await asyncio.gather(*(client.check_status(status_request()) for _ in range(20)))
        assert all(result.paid for result in results)
        assert fake.tokens_issued == 1
        assert fake.requests[TOKEN_PATH] == 1
        assert fake.requests[STATUS] == 20

        clock.now += 839  # 900 s token, refreshed 60 s early: still good
        await client.check_status(status_request())
        assert fake.tokens_issued == 1

        clock.now += 2
        await asyncio.gather(*(client.check_status(status_request()) for _ in range(20)))
        assert fake.tokens_issued == 2
        assert fake.requests[STATUS] == 41


async def test_expires_in_as_a_string(credentials: Credentials, keys: Keys) -> None:
    fake = create_fake_doku(
        keys.client_id,
        keys.client_secret,
        keys.merchant.public_key(),
        token_lifetime=120,
        expires_in_as_string=True,
    )
    fake.mark_paid(va_no("1001"), Decimal("1"), "PAY-1")
    clock = Clock()
    with running_server(fake.app) as base:
        async with make_client(credentials, base, clock=clock) as client:
            token = await client.access_token()
            clock.now += 100  # 120 s minus a 12 s margin: still the same token
            assert await client.access_token() == token
            clock.now += 10
            assert await client.access_token() != token
    assert fake.tokens_issued == 2


async def test_a_refused_token_is_renewed_and_the_call_repeated_once(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    fake.mark_paid(va_no("1001"), Decimal("25000"), "PAY-1")
    async with make_client(credentials, url) as client:
        first = await client.access_token()
        fake.revoke_tokens()
        result = await client.check_status(status_request())
        assert result.paid is True
        assert await client.access_token() != first
    assert fake.tokens_issued == 2
    assert fake.requests[STATUS] == 2


async def test_a_token_refused_twice_is_reported_not_retried_forever(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    fake.fail_next(3, 401, path=STATUS, response_code="4012601")
    async with make_client(credentials, url) as client:
        with pytest.raises(DokuError) as caught:
            await client.check_status(status_request())
    assert caught.value.response_code == "4012601"
    assert caught.value.status == 401
    assert fake.requests[STATUS] == 2
    assert fake.tokens_issued == 2


async def test_token_call_signed_with_the_wrong_key_is_refused(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    wrong = Credentials(
        credentials.client_id,
        credentials.client_secret,
        credentials.doku_public_key,
        generate_private_key(),
        credentials.merchant_public_key,
    )
    async with make_client(wrong, url) as client:
        with pytest.raises(DokuError) as caught:
            await client.check_status(status_request())
    assert caught.value.response_code == "4017300"
    assert caught.value.status == 401
    assert not isinstance(caught.value, DokuUnavailable)
    assert fake.requests[STATUS] == 0


# -- operations -------------------------------------------------------------------------------


async def test_check_status_unpaid_then_paid(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    async with make_client(credentials, url) as client:
        await client.create_va(create_request("2002"))
        unpaid = await client.check_status(status_request("2002"))
        assert unpaid.paid is False
        assert unpaid.paid_amount == Decimal("0")
        assert unpaid.payment_request_id is None
        assert unpaid.trx_id == "INV-2002"

        fake.mark_paid(va_no("2002"), Decimal("25000"), "PAY-9", inquiry_request_id="INQ-9")
        paid = await client.check_status(status_request("2002"))
    assert paid.paid is True
    assert paid.response_code == "2002600"
    assert paid.paid_amount == Decimal("25000.00")
    assert paid.payment_request_id == "PAY-9"
    assert paid.inquiry_request_id == "INQ-9"
    assert paid.payment_flag_reason is not None
    assert paid.payment_flag_reason.english == "Success"
    assert paid.body["virtualAccountData"]["paidAmount"] == {"value": "25000.00", "currency": "IDR"}


async def test_check_status_of_an_unknown_va(credentials: Credentials, url: str) -> None:
    async with make_client(credentials, url) as client:
        with pytest.raises(DokuError) as caught:
            await client.check_status(status_request("404"))
    assert caught.value.response_code == "4042601"
    assert caught.value.status == 404
    assert caught.value.body is not None
    assert caught.value.body["responseCode"] == "4042601"


async def test_create_update_delete_round_trip(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    async with make_client(credentials, url) as client:
        created = await client.create_va(
            create_request("3003", trx_type="V", max_amount=Decimal("9"))
        )
        assert created.response_code == "2002700"
        assert created.virtual_account_no == va_no("3003")
        assert created.how_to_pay_page is not None
        assert created.how_to_pay_page.endswith("/888993003")
        assert created.how_to_pay_api is not None

        with pytest.raises(DokuError) as duplicate:
            await client.create_va(create_request("3003"))
        assert duplicate.value.response_code == "4092700"

        updated = await client.update_va(
            UpdateVaRequest(
                PARTNER, "3003", va_no("3003"), "INV-3003", CHANNEL, amount=Decimal("30000")
            )
        )
        assert updated.response_code == "2002800"
        stored = fake.virtual_account(va_no("3003"))
        assert stored is not None
        assert stored.amount == Decimal("30000")
        assert stored.max_amount == Decimal("9")

        deleted = await client.delete_va(
            DeleteVaRequest(PARTNER, "3003", va_no("3003"), "INV-3003", CHANNEL)
        )
        assert deleted.response_code == "2003100"
        assert fake.virtual_account(va_no("3003")) is None

        with pytest.raises(DokuError) as gone:
            await client.delete_va(
                DeleteVaRequest(PARTNER, "3003", va_no("3003"), "INV-3003", CHANNEL)
            )
        assert gone.value.response_code == "4043111"
    assert [fake.requests[e.path] for e in (CREATE_VA, UPDATE_VA, DELETE_VA)] == [2, 1, 2]


async def test_the_signed_bytes_are_the_bytes_sent(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    request = create_request("4004", name="Jl. A/B 12")
    async with make_client(credentials, url, channel_id="H2H") as client:
        await client.create_va(request)
        await client.check_status(status_request("4004"))
    create, status = [r for r in fake.received if r.path != TOKEN_PATH]
    # Minified, in the request's key order, "/" unescaped: the form DOKU re-minifies to.
    assert create.body == minify(request.to_body())
    assert (create.method, status.method) == ("POST", "POST")
    assert create.headers["content-type"] == "application/json"
    assert create.headers["x-partner-id"] == credentials.client_id
    assert create.headers["channel-id"] == "H2H"
    assert create.headers["authorization"].startswith("Bearer ")
    assert create.headers["x-timestamp"].endswith("+07:00")
    ids = {create.headers["x-external-id"], status.headers["x-external-id"]}
    assert len(ids) == 2
    assert all(len(i) == 32 and i.isdigit() for i in ids)


async def test_delete_is_sent_as_delete_with_a_json_body(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    request = DeleteVaRequest(PARTNER, "5005", va_no("5005"), "INV-5005", CHANNEL)
    async with make_client(credentials, url) as client:
        await client.create_va(create_request("5005"))
        await client.delete_va(request)
    sent = fake.received[-1]
    assert (sent.method, sent.path) == ("DELETE", DELETE_VA.path)
    assert json.loads(sent.body) == request.to_body()


async def test_a_client_with_the_wrong_secret_is_refused_by_signature(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    wrong = Credentials(
        credentials.client_id,
        "SK-not-the-secret",
        credentials.doku_public_key,
        credentials.merchant_private_key,
        credentials.merchant_public_key,
    )
    async with make_client(wrong, url) as client:
        with pytest.raises(DokuError) as caught:
            await client.check_status(status_request())
    assert caught.value.response_code == "4012600"
    assert caught.value.status == 401
    assert "Signature" in caught.value.message
    assert fake.requests[STATUS] == 1  # a signature failure is not a token problem: no retry
    assert fake.tokens_issued == 1


async def test_from_settings(keys: Keys, fake: FakeDoku, url: str) -> None:
    settings = make_settings(keys, client={"base_url": url, "channel_id": "SDK"})
    fake.mark_paid(va_no("1001"), Decimal("2"), "PAY-2")
    async with DokuClient.from_settings(settings) as client:
        assert (await client.check_status(status_request())).paid is True
    assert fake.received[-1].headers["channel-id"] == "SDK"


# -- failures and retries -------------------------------------------------------------------------


async def test_a_stalling_doku_is_unavailable_within_the_timeout(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    async with make_client(credentials, url, timeout=0.3, retries=0) as client:
        await client.access_token()
        fake.stall_seconds = 5
        started = time.monotonic()
        with pytest.raises(DokuUnavailable) as caught:
            await client.check_status(status_request())
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert "ReadTimeout" in caught.value.message
    assert caught.value.status is None


async def test_check_status_is_retried_after_a_read_timeout(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    async with make_client(credentials, url, timeout=0.3, retries=1) as client:
        await client.access_token()
        fake.stall_seconds = 5
        with pytest.raises(DokuUnavailable):
            await client.check_status(status_request())
    assert fake.requests[STATUS] == 2


async def test_create_is_not_retried_after_a_read_timeout(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    async with make_client(credentials, url, timeout=0.3, retries=2) as client:
        await client.access_token()
        fake.stall_seconds = 5
        with pytest.raises(DokuUnavailable) as caught:
            await client.create_va(create_request())
    assert fake.requests[CREATE_VA.path] == 1
    assert "check its status" in caught.value.message


async def test_check_status_is_retried_on_5xx(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    fake.mark_paid(va_no("1001"), Decimal("25000"), "PAY-1")
    fake.fail_next(2, 503, path=STATUS)
    async with make_client(credentials, url, retries=2) as client:
        assert (await client.check_status(status_request())).paid is True
    assert fake.requests[STATUS] == 3


async def test_check_status_gives_up_after_the_configured_retries(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    fake.fail_next(3, 500, path=STATUS)
    async with make_client(credentials, url, retries=2) as client:
        with pytest.raises(DokuUnavailable) as caught:
            await client.check_status(status_request())
    assert fake.requests[STATUS] == 3
    assert caught.value.status == 500
    assert caught.value.response_code == "5002600"


async def test_token_call_is_retried_on_5xx(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    fake.fail_next(1, 502, path=TOKEN_PATH)
    async with make_client(credentials, url, retries=1) as client:
        assert await client.access_token()
    assert fake.requests[TOKEN_PATH] == 2
    assert fake.tokens_issued == 1


async def test_create_is_not_retried_on_5xx(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    fake.fail_next(1, 500, path=CREATE_VA.path)
    async with make_client(credentials, url, retries=3) as client:
        with pytest.raises(DokuUnavailable) as caught:
            await client.create_va(create_request())
    assert fake.requests[CREATE_VA.path] == 1
    assert caught.value.response_code == "5002700"


class RefuseFirstConnection(httpx.AsyncBaseTransport):
    """Raises ConnectError for the first ``n`` requests to ``path``, as a refused connect would."""

    def __init__(self, path: str, n: int) -> None:
        self.path = path
        self.remaining = n
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.remaining:
            self.remaining -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_create_is_retried_when_the_connection_was_never_made(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    transport = RefuseFirstConnection(CREATE_VA.path, 2)
    async with httpx.AsyncClient(transport=transport) as http:
        settings = ClientSettings(base_url=url, retries=2)
        client = DokuClient(credentials, settings, http=http, backoff=0.01)
        result = await client.create_va(create_request())
        await client.aclose()  # a given client is not closed by DokuClient
        assert not http.is_closed
    assert result.response_code == "2002700"
    assert transport.remaining == 0
    assert fake.requests[CREATE_VA.path] == 1


async def test_nothing_listening_is_unavailable_after_the_retries(
    credentials: Credentials,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with make_client(credentials, url, retries=2) as client:
        with pytest.raises(DokuUnavailable) as caught:
            await client.create_va(create_request())
    assert "3 attempt(s)" in caught.value.message


async def test_malformed_json_is_a_protocol_error(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    async with make_client(credentials, url, retries=2) as client:
        await client.access_token()
        fake.malformed_next(1, path=STATUS)
        with pytest.raises(DokuProtocolError) as caught:
            await client.check_status(status_request())
    assert caught.value.status == 200
    assert fake.requests[STATUS] == 1  # garbage is not transient: not retried


async def test_malformed_token_answer_is_a_protocol_error(
    credentials: Credentials, fake: FakeDoku, url: str
) -> None:
    fake.malformed_next(1, path=TOKEN_PATH)
    async with make_client(credentials, url) as client:
        with pytest.raises(DokuProtocolError):
            await client.access_token()
        assert await client.access_token()  # the next call simply fetches again


async def test_secrets_tokens_and_signatures_are_never_logged(
    credentials: Credentials, fake: FakeDoku, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="doku_gateway")
    fake.fail_next(1, 500, path=STATUS)
    fake.mark_paid(va_no("1001"), Decimal("1"), "PAY-1")
    async with make_client(credentials, url, retries=1) as client:
        await client.check_status(status_request())
        fake.revoke_tokens()
        await client.check_status(status_request())
        token = await client.access_token()
    assert "retry 1 of 1" in caplog.text  # the log did record the calls
    secrets = {credentials.client_secret, token}
    for received in fake.received:
        secrets.add(received.headers["x-signature"])
        secrets.add(received.headers.get("authorization", "Bearer x").split(" ", 1)[1])
    for secret in secrets:
        assert secret not in caplog.text


def test_external_ids_are_32_digits_and_unique() -> None:
    ids = {new_external_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and i.isdigit() for i in ids)
