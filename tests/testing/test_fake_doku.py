"""FakeDoku refuses what DOKU refuses: bad signatures, bad tokens, bad VA composition."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.config import ClientSettings, Credentials
from gateway.doku.client import TOKEN_PATH, DokuClient, new_external_id
from gateway.snap.canonical import minify
from gateway.snap.keys import generate_private_key
from gateway.snap.signature import SymmetricSigner, sign_asymmetric
from gateway.snap.timestamps import format_timestamp
from gateway.snap.va import CHECK_STATUS, CREATE_VA, DELETE_VA, UPDATE_VA, Endpoint
from gateway.testing import FakeDoku, create_fake_doku

from ..support import Keys, running_server

pytestmark = pytest.mark.anyio

PARTNER = "   88899"


def create_body(customer: str = "1001", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partnerServiceId": PARTNER,
        "customerNo": customer,
        "virtualAccountNo": PARTNER + customer,
        "virtualAccountName": "Budi",
        "trxId": f"INV-{customer}",
        "totalAmount": {"value": "25000.00", "currency": "IDR"},
        "additionalInfo": {"channel": "VIRTUAL_ACCOUNT_BRI"},
        "virtualAccountTrxType": "C",
    }
    body.update(changes)
    return body


@pytest.fixture
async def http(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture
async def token(keys: Keys, url: str) -> str:
    credentials = Credentials(
        keys.client_id,
        keys.client_secret,
        keys.doku.public_key(),
        keys.merchant,
        keys.merchant.public_key(),
    )
    async with DokuClient(credentials, ClientSettings(base_url=url)) as client:
        return await client.access_token()


def token_headers(keys: Keys, timestamp: str | None = None, **changes: str) -> dict[str, str]:
    stamp = timestamp or format_timestamp()
    headers = {
        "Content-Type": "application/json",
        "X-TIMESTAMP": stamp,
        "X-CLIENT-KEY": keys.client_id,
        "X-SIGNATURE": sign_asymmetric(keys.merchant, keys.client_id, stamp),
    }
    headers.update(changes)
    return headers


class Caller:
    """Signs transactions the way the merchant must, with knobs to get each part wrong."""

    def __init__(self, http: httpx.AsyncClient, keys: Keys, token: str) -> None:
        self.http = http
        self.keys = keys
        self.token = token

    async def send(
        self,
        endpoint: Endpoint,
        document: Any,
        *,
        body: bytes | None = None,
        secret: str | None = None,
        token: str | None = None,
        drop: str | None = None,
        external_id: str | None = None,
    ) -> httpx.Response:
        content = minify(document) if body is None else body
        signed = minify(document)
        timestamp = format_timestamp()
        bearer = self.token if token is None else token
        signer = SymmetricSigner.from_secret(secret or self.keys.client_secret)
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {bearer}",
            "X-TIMESTAMP": timestamp,
            "X-SIGNATURE": signer.sign(endpoint.method, endpoint.path, bearer, signed, timestamp),
            "X-PARTNER-ID": self.keys.client_id,
            "X-EXTERNAL-ID": external_id or new_external_id(),
            "CHANNEL-ID": "H2H",
        }
        if drop:
            del headers[drop]
        return await self.http.request(
            endpoint.method, endpoint.path, content=content, headers=headers
        )


@pytest.fixture
def caller(http: httpx.AsyncClient, keys: Keys, token: str) -> Caller:
    return Caller(http, keys, token)


def code(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["responseCode"], body["responseMessage"]


# -- token call -------------------------------------------------------------------------------


async def test_token_call_signed_by_the_merchant_key_gets_a_token(
    http: httpx.AsyncClient, keys: Keys, fake: FakeDoku
) -> None:
    body = minify({"grantType": "client_credentials"})
    response = await http.post(TOKEN_PATH, headers=token_headers(keys), content=body)
    answer = response.json()
    assert response.status_code == 200
    assert answer["responseCode"] == "2007300"
    assert answer["tokenType"] == "Bearer"
    assert answer["expiresIn"] == 900
    assert fake.tokens_issued == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("wrong-key", (401, "4017300", "Unauthorized. Invalid Signature")),
        ("stale", (400, "4007301", "Invalid Field Format {X-TIMESTAMP}")),
        ("client", (401, "4017300", "Unauthorized. Unknown Client")),
        ("missing", (400, "4007302", "Missing Mandatory Field {X-SIGNATURE}")),
        ("grant", (400, "4007301", "Invalid Field Format {grantType}")),
    ],
)
async def test_token_call_refusals(
    http: httpx.AsyncClient,
    keys: Keys,
    fake: FakeDoku,
    change: str,
    expected: tuple[int, str, str],
) -> None:
    headers = token_headers(keys)
    grant = "client_credentials"
    if change == "wrong-key":
        headers["X-SIGNATURE"] = sign_asymmetric(
            generate_private_key(), keys.client_id, headers["X-TIMESTAMP"]
        )
    elif change == "stale":
        stamp = format_timestamp(datetime.now(UTC) - timedelta(minutes=10))
        headers = token_headers(keys, stamp)
    elif change == "client":
        headers["X-CLIENT-KEY"] = "BRN-someone-else"
    elif change == "missing":
        del headers["X-SIGNATURE"]
    else:
        grant = "password"
    response = await http.post(TOKEN_PATH, headers=headers, content=minify({"grantType": grant}))
    assert code(response) == expected
    assert fake.tokens_issued == 0


async def test_expires_in_can_be_sent_as_a_string(keys: Keys) -> None:
    fake = create_fake_doku(
        keys.client_id, keys.client_secret, keys.merchant.public_key(), expires_in_as_string=True
    )
    with running_server(fake.app) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.post(
                TOKEN_PATH,
                headers=token_headers(keys),
                content=b'{"grantType":"client_credentials"}',
            )
    assert response.json()["expiresIn"] == "900"


# -- transactions -----------------------------------------------------------------------------


async def test_a_correct_create_is_stored(caller: Caller, fake: FakeDoku) -> None:
    response = await caller.send(CREATE_VA, create_body())
    assert code(response) == (200, "2002700", "Successful")
    data = response.json()["virtualAccountData"]
    assert data["virtualAccountNo"] == PARTNER + "1001"
    assert data["additionalInfo"]["howToPayPage"].endswith("/888991001")
    stored = fake.virtual_account("888991001")
    assert stored is not None
    assert stored.amount == Decimal("25000.00")


async def test_a_pretty_printed_body_verifies_like_dokus_re_minifying_does(
    caller: Caller,
) -> None:
    document = create_body()
    pretty = json.dumps(document, indent=2).encode()
    response = await caller.send(CREATE_VA, document, body=pretty)
    assert code(response)[1] == "2002700"


async def test_a_body_changed_after_signing_is_refused(caller: Caller, fake: FakeDoku) -> None:
    signed_for = create_body()
    sent = minify(create_body(totalAmount={"value": "1.00", "currency": "IDR"}))
    response = await caller.send(CREATE_VA, signed_for, body=sent)
    assert code(response) == (401, "4012700", "Unauthorized. Signature Not Match")
    assert fake.virtual_account("888991001") is None


async def test_the_wrong_secret_is_refused(caller: Caller) -> None:
    response = await caller.send(CHECK_STATUS, {}, secret="SK-wrong")
    assert code(response) == (401, "4012600", "Unauthorized. Signature Not Match")


@pytest.mark.parametrize("drop", [None, "Authorization"])
async def test_bad_or_missing_tokens_are_refused(caller: Caller, drop: str | None) -> None:
    response = await caller.send(UPDATE_VA, create_body(), token="not-a-token", drop=drop)
    assert code(response) == (401, "4012801", "Invalid Token (B2B)")


async def test_revoked_tokens_are_refused(caller: Caller, fake: FakeDoku) -> None:
    fake.revoke_tokens()
    response = await caller.send(DELETE_VA, create_body())
    assert code(response) == (401, "4013101", "Invalid Token (B2B)")


async def test_a_missing_header_is_named(caller: Caller) -> None:
    response = await caller.send(CHECK_STATUS, {}, drop="X-EXTERNAL-ID")
    assert code(response) == (400, "4002602", "Missing Mandatory Field {X-EXTERNAL-ID}")


async def test_a_reused_external_id_is_a_conflict(caller: Caller) -> None:
    first = await caller.send(CREATE_VA, create_body("1"), external_id="123")
    again = await caller.send(CREATE_VA, create_body("2"), external_id="123")
    assert code(first)[1] == "2002700"
    assert code(again) == (409, "4092700", "Conflict")


@pytest.mark.parametrize(
    ("endpoint", "change", "expected"),
    [
        (
            CREATE_VA,
            {"virtualAccountNo": "888991001"},
            (400, "4002701", "Invalid Field Format {virtualAccountNo}"),
        ),
        (CREATE_VA, {"trxId": None}, (400, "4002702", "Missing Mandatory Field {trxId}")),
        (
            CREATE_VA,
            {
                "virtualAccountTrxType": "C",
                "additionalInfo": {
                    "channel": "VIRTUAL_ACCOUNT_BRI",
                    "virtualAccountConfig": {"minAmount": "1.00"},
                },
            },
            (
                400,
                "4002701",
                "Invalid Field Format {additionalInfo.virtualAccountConfig.minAmount}",
            ),
        ),
        (
            CHECK_STATUS,
            {"partnerServiceId": "88899", "virtualAccountNo": "888991001"},
            (400, "4002601", "Invalid Field Format {partnerServiceId}"),
        ),
        (
            UPDATE_VA,
            {"customerNo": "12a"},
            (400, "4002801", "Invalid Field Format {customerNo}"),
        ),
        (
            DELETE_VA,
            {"additionalInfo": {}},
            (400, "4003102", "Missing Mandatory Field {additionalInfo.channel}"),
        ),
    ],
)
async def test_composition_and_field_rules_are_enforced(
    caller: Caller, endpoint: Endpoint, change: dict[str, Any], expected: tuple[int, str, str]
) -> None:
    document = create_body()
    document.update(change)
    response = await caller.send(endpoint, document)
    assert code(response) == expected


async def test_a_body_that_is_not_json_is_a_bad_request(caller: Caller) -> None:
    response = await caller.send(CREATE_VA, None, body=b"{nope")
    # Signed over "null", so "{nope" fails the signature before anything reads it.
    assert code(response) == (401, "4012700", "Unauthorized. Signature Not Match")
    response = await caller.send(CREATE_VA, None, body=b"null")
    assert code(response) == (400, "4002701", "Invalid Field Format {body}")


async def test_duplicate_va_and_unknown_va(caller: Caller) -> None:
    assert code(await caller.send(CREATE_VA, create_body()))[1] == "2002700"
    assert code(await caller.send(CREATE_VA, create_body())) == (409, "4092700", "Conflict")
    unknown = create_body("999")
    status = await caller.send(CHECK_STATUS, unknown)
    assert code(status) == (404, "4042601", "Transaction Not Found")
    assert code(await caller.send(UPDATE_VA, unknown))[1] == "4042811"
    wrong_trx = create_body(trxId="INV-other")
    assert code(await caller.send(DELETE_VA, wrong_trx))[1] == "4043118"


async def test_mark_paid_is_reported_by_check_status(caller: Caller, fake: FakeDoku) -> None:
    await caller.send(CREATE_VA, create_body())
    before = (await caller.send(CHECK_STATUS, create_body())).json()["virtualAccountData"]
    fake.mark_paid(PARTNER + "1001", Decimal("25000"), "PAY-1", inquiry_request_id="INQ-1")
    after = (await caller.send(CHECK_STATUS, create_body())).json()["virtualAccountData"]
    assert before["paymentFlagReason"] == {"english": "Pending", "indonesia": "Belum Terbayar"}
    assert before["paidAmount"] == {"value": "0.00", "currency": "IDR"}
    assert after["paymentFlagReason"] == {"english": "Success", "indonesia": "Sukses"}
    assert after["paidAmount"] == {"value": "25000.00", "currency": "IDR"}
    assert (after["paymentRequestId"], after["inquiryRequestId"], after["trxId"]) == (
        "PAY-1",
        "INQ-1",
        "INV-1001",
    )


# -- switches ---------------------------------------------------------------------------------


async def test_fail_next_and_malformed_next_and_counting(
    http: httpx.AsyncClient, caller: Caller, fake: FakeDoku
) -> None:
    fake.fail_next(2, 503, path=CREATE_VA.path)
    fake.malformed_next(1)
    assert (await caller.send(CHECK_STATUS, create_body())).content == b'{"responseCode": "200'
    first = await caller.send(CREATE_VA, create_body())
    assert code(first) == (503, "5032700", "Failure requested by the test")
    assert (await caller.send(CREATE_VA, create_body())).status_code == 503
    assert code(await caller.send(CREATE_VA, create_body()))[1] == "2002700"
    assert fake.requests[CREATE_VA.path] == 3
    assert fake.requests[CHECK_STATUS.path] == 1
    assert fake.requests[TOKEN_PATH] == 1
