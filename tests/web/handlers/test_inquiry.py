"""The inquiry endpoint end to end: real uvicorn, real sockets, real keys and signatures."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway import Bill, BillStatus, Inquiry, ResolverUnavailable
from gateway.config import Settings
from gateway.doku.simulator import DokuSimulator, SignedRequest, inquiry_body
from gateway.resolvers.dispatch import ResolverSet
from gateway.snap.keys import private_key_pem
from gateway.snap.timestamps import format_timestamp
from gateway.snap.tokens import TokenIssuer
from gateway.web.app import create_app

from ...support import Keys, make_settings, running_server

pytestmark = pytest.mark.anyio

PATH = "/v1.1/transfer-va/inquiry"
PARTNER = "   88899"


def body_for(code: str, partner: str = PARTNER, **changes: Any) -> dict[str, Any]:
    document = inquiry_body(code, partner, inquiry_request_id="req-" + code)
    document.update(changes)
    return document


async def send(client: httpx.AsyncClient, request: SignedRequest) -> httpx.Response:
    return await client.post(request.path, headers=request.headers, content=request.body)


async def inquire(
    client: httpx.AsyncClient,
    simulator: DokuSimulator,
    token: str,
    document: dict[str, Any],
    **kwargs: Any,
) -> httpx.Response:
    return await send(client, simulator.inquiry_request(token, document, **kwargs))


# --- answers ------------------------------------------------------------------------------------


async def test_closed_bill_echoes_request_strings(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    document = body_for("8889900001234")
    response = await inquire(client, simulator, token, document)
    assert response.status_code == 200
    body = response.json()
    assert body["responseCode"] == "2002400"
    data = body["virtualAccountData"]
    assert data["partnerServiceId"] == "   88899"
    assert data["virtualAccountNo"] == "   8889900001234"
    assert data["customerNo"] == "00001234"
    assert data["inquiryRequestId"] == document["inquiryRequestId"]
    assert data["totalAmount"] == {"value": "25000.00", "currency": "IDR"}
    assert data["virtualAccountTrxType"] == "C"
    assert data["inquiryStatus"] == "00"
    assert data["additionalInfo"]["channel"] == "VIRTUAL_ACCOUNT_BTN"
    assert "virtualAccountConfig" not in data["additionalInfo"]
    assert response.headers["content-type"] == "application/json"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", response.headers["x-timestamp"])
    # The padded strings travel byte for byte, not re-encoded.
    assert b'"partnerServiceId":"   88899"' in response.content


async def test_open_amount_with_limits(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    response = await inquire(client, simulator, token, body_for("8889911600001"))
    data = response.json()["virtualAccountData"]
    assert data["virtualAccountTrxType"] == "O"
    assert data["totalAmount"]["value"] == "0.00"
    assert data["additionalInfo"]["virtualAccountConfig"] == {
        "minAmount": "10000.00",
        "maxAmount": "5000000.00",
    }


@pytest.mark.parametrize(
    ("code", "status", "response_code"),
    [
        ("8889911700001", 404, "4042414"),
        ("8889911800001", 404, "4042419"),
        ("8889911900001", 404, "4042412"),
    ],
)
async def test_demo_prefixes(
    client: httpx.AsyncClient,
    simulator: DokuSimulator,
    token: str,
    code: str,
    status: int,
    response_code: str,
) -> None:
    response = await inquire(client, simulator, token, body_for(code))
    assert response.status_code == status
    assert response.json()["responseCode"] == response_code
    assert "virtualAccountData" not in response.json()


async def test_unpadded_partner_service_id_as_in_doku_samples(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    document = body_for(
        "788961220023342200",
        "78896",
        partnerServiceId="78896",
        customerNo="1220023342200",
        virtualAccountNo="788961220023342200",
    )
    response = await inquire(client, simulator, token, document)
    data = response.json()["virtualAccountData"]
    assert (data["partnerServiceId"], data["virtualAccountNo"]) == ("78896", "788961220023342200")


async def test_pretty_printed_body_signed_minified(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    response = await inquire(client, simulator, token, body_for("8889900001234"), pretty=True)
    assert response.json()["responseCode"] == "2002400"


@pytest.mark.parametrize("ensure_ascii", [False, True])
async def test_non_ascii_body_signed_either_way(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str, ensure_ascii: bool
) -> None:
    document = body_for("8889900001234")
    document["additionalInfo"] = {"channel": "VIRTUAL_ACCOUNT_BTN", "note": "Budi Śantoso / Jl. A"}
    response = await inquire(client, simulator, token, document, ensure_ascii=ensure_ascii)
    assert response.json()["responseCode"] == "2002400"


async def test_lower_case_bearer_scheme(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    request = simulator.inquiry_request(token, body_for("8889900001234"))
    request.headers["Authorization"] = f"bearer {token}"
    assert (await send(client, request)).json()["responseCode"] == "2002400"


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["X-TIMESTAMP", "X-SIGNATURE", "Authorization", "X-PARTNER-ID", "X-EXTERNAL-ID"]
)
async def test_missing_header(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str, header: str
) -> None:
    request = simulator.inquiry_request(token, body_for("8889900001234"))
    del request.headers[header]
    response = await send(client, request)
    assert response.status_code == 400
    assert response.json() == {
        "responseCode": "4002402",
        "responseMessage": f"Missing Mandatory Field {{{header}}}",
    }


@pytest.mark.parametrize(
    "timestamp",
    [
        "yesterday",
        "2024-05-01",
        "2024-05-01T10:15:30",
        format_timestamp(datetime.now(UTC) + timedelta(minutes=10)),
    ],
)
async def test_bad_timestamp(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str, timestamp: str
) -> None:
    request = simulator.inquiry_request(token, body_for("8889900001234"), timestamp=timestamp)
    response = await send(client, request)
    assert response.status_code == 400
    assert response.json() == {
        "responseCode": "4002401",
        "responseMessage": "Invalid Field Format {X-TIMESTAMP}",
    }


async def test_external_id_with_letters_and_56_chars_is_fine(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    external = "VIRTUAL_ACCOUNT2226230726182946130107164433001000268204"
    response = await inquire(
        client, simulator, token, body_for("8889900001234"), external_id=external
    )
    assert response.json()["responseCode"] == "2002400"


async def test_external_id_too_long(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    response = await inquire(
        client, simulator, token, body_for("8889900001234"), external_id="9" * 65
    )
    assert response.json() == {
        "responseCode": "4002401",
        "responseMessage": "Invalid Field Format {X-EXTERNAL-ID}",
    }


@pytest.mark.parametrize("authorization", ["Basic abc", "Bearer", "Bearer not.a.jwt", "token"])
async def test_bad_token(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str, authorization: str
) -> None:
    request = simulator.inquiry_request(token, body_for("8889900001234"))
    request.headers["Authorization"] = authorization
    response = await send(client, request)
    assert response.status_code == 401
    assert response.json()["responseCode"] == "4012401"


async def test_expired_token(
    client: httpx.AsyncClient, simulator: DokuSimulator, keys: Keys
) -> None:
    issued = TokenIssuer(keys.merchant, keys.client_id).issue(now=time.time() - 2000)
    response = await inquire(client, simulator, issued.access_token, body_for("8889900001234"))
    assert response.status_code == 401
    assert response.json()["responseCode"] == "4012401"


async def test_doku_issued_token_needs_the_switch(
    client: httpx.AsyncClient, simulator: DokuSimulator, keys: Keys
) -> None:
    doku_token = TokenIssuer(keys.doku, keys.client_id, issuer="DOKU").issue().access_token
    response = await inquire(client, simulator, doku_token, body_for("8889900001234"))
    assert response.json()["responseCode"] == "4012401"
    settings = make_settings(keys, security={"accept_doku_tokens": True})
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            accepted = await inquire(http, simulator, doku_token, body_for("8889900001234"))
    assert accepted.json()["responseCode"] == "2002400"


async def test_bad_signature(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    request = simulator.inquiry_request(token, body_for("8889900001234"))
    request.headers["X-SIGNATURE"] = request.headers["X-SIGNATURE"][::-1]
    response = await send(client, request)
    assert response.status_code == 401
    assert response.json() == {
        "responseCode": "4012400",
        "responseMessage": "Unauthorized. Signature",
    }


async def test_signature_over_trimmed_padding_is_refused(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    document = body_for("8889900001234")
    signed = simulator.inquiry_request(token, dict(document, partnerServiceId="88899"))
    request = simulator.inquiry_request(token, document)
    request.headers["X-SIGNATURE"] = signed.headers["X-SIGNATURE"]
    request.headers["X-TIMESTAMP"] = signed.headers["X-TIMESTAMP"]
    assert (await send(client, request)).json()["responseCode"] == "4012400"


async def test_log_only_signature_mode(simulator: DokuSimulator, keys: Keys) -> None:
    settings = make_settings(keys, security={"signature_mode": "log-only"})
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            request = simulator.inquiry_request(token, body_for("8889900001234"))
            request.headers["X-SIGNATURE"] = "A" * 88
            response = await send(http, request)
            metrics = (await http.get("/metrics")).text
    assert response.json()["responseCode"] == "2002400"
    assert (
        'doku_gateway_signature_failures_total{endpoint="inquiry",reason="signature_logged"} 1.0'
        in metrics
    )


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b"", b"null"])
async def test_body_not_a_json_object(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str, raw: bytes
) -> None:
    request = simulator.inquiry_request(token, body_for("8889900001234"))
    response = await client.post(PATH, headers=request.headers, content=raw)
    assert response.status_code == 400
    assert response.json() == {
        "responseCode": "4002401",
        "responseMessage": "Invalid Field Format {body}",
    }


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"partnerServiceId": None}, "4002402", "partnerServiceId"),
        ({"customerNo": None}, "4002402", "customerNo"),
        ({"virtualAccountNo": None}, "4002402", "virtualAccountNo"),
        ({"inquiryRequestId": None}, "4002402", "inquiryRequestId"),
        ({"additionalInfo": {}}, "4002402", "additionalInfo.channel"),
        ({"customerNo": 1234}, "4002401", "customerNo"),
        ({"virtualAccountNo": "   88899ABCD"}, "4002401", "virtualAccountNo"),
        ({"virtualAccountNo": "8" * 29}, "4002401", "virtualAccountNo"),
        ({"virtualAccountNo": "   8889900009999"}, "4002401", "virtualAccountNo"),
        ({"partnerServiceId": "123456789"}, "4002401", "partnerServiceId"),
        ({"inquiryRequestId": "x" * 129}, "4002401", "inquiryRequestId"),
        ({"additionalInfo": "VIRTUAL_ACCOUNT_BTN"}, "4002401", "additionalInfo"),
        ({"channelCode": [6011]}, "4002401", "channelCode"),
    ],
)
async def test_bad_fields(
    client: httpx.AsyncClient,
    simulator: DokuSimulator,
    token: str,
    change: dict[str, Any],
    code: str,
    field: str,
) -> None:
    document = body_for("8889900001234")
    for key, value in change.items():
        if value is None:
            del document[key]
        else:
            document[key] = value
    response = await inquire(client, simulator, token, document)
    assert response.status_code == 400
    assert response.json()["responseCode"] == code
    assert response.json()["responseMessage"].endswith(f"{{{field}}}")


async def test_body_over_limit(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    document = body_for("8889900001234")
    document["additionalInfo"] = {"channel": "VIRTUAL_ACCOUNT_BTN", "pad": "x" * 70_000}
    response = await inquire(client, simulator, token, document)
    assert response.status_code == 400
    assert response.json()["responseCode"] == "4002400"
    assert "65536" in response.json()["responseMessage"]


async def test_chunked_body_over_limit(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    request = simulator.inquiry_request(token, body_for("8889900001234"))

    async def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    response = await client.post(PATH, headers=request.headers, content=chunks())
    assert response.json()["responseCode"] == "4002400"


async def test_slow_client_gets_an_answer(keys: Keys, simulator: DokuSimulator) -> None:
    settings = make_settings(keys, http={"body_timeout": 0.3})
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
        request = simulator.inquiry_request(token, body_for("8889900001234"))
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
        writer.write(
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: "
            f"{len(request.body)}\r\n\r\n".encode()
            + request.body[:10]
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), timeout=10)
        writer.close()
    assert b" 400 " in answer.split(b"\r\n", 1)[0]
    assert b'"responseCode":"4002400"' in answer


# --- replay -------------------------------------------------------------------------------------


async def test_identical_retry_gets_first_answer(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    request = simulator.inquiry_request(token, body_for("8889900001234"), external_id="ext-1")
    first = await send(client, request)
    second = await send(client, request)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content


async def test_reused_external_id_with_other_request_conflicts(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    first = await inquire(client, simulator, token, body_for("8889900001234"), external_id="ext-2")
    other = await inquire(client, simulator, token, body_for("8889900005678"), external_id="ext-2")
    assert first.status_code == 200
    assert other.status_code == 409
    assert other.json()["responseCode"] == "4092400"


async def test_unauthenticated_request_does_not_burn_external_id(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    forged = simulator.inquiry_request(token, body_for("8889900001234"), external_id="ext-3")
    forged.headers["X-SIGNATURE"] = "A" * 88
    assert (await send(client, forged)).status_code == 401
    real = await inquire(client, simulator, token, body_for("8889900005678"), external_id="ext-3")
    assert real.json()["responseCode"] == "2002400"


async def test_same_external_id_from_other_partner_is_independent(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    first = simulator.inquiry_request(token, body_for("8889900001234"), external_id="ext-4")
    other = simulator.inquiry_request(token, body_for("8889900005678"), external_id="ext-4")
    other.headers["X-PARTNER-ID"] = "ANOTHER-PARTNER"
    assert (await send(client, first)).status_code == 200
    assert (await send(client, other)).status_code == 200


# --- resolvers ----------------------------------------------------------------------------------


class Scripted:
    """A resolver whose behaviour the test sets, counting calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.outcome: Any = Bill(name="Budi", amount=Decimal("150000.00"), trx_id="INV-1")
        self.delay = 0.0

    async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        result: Bill | BillStatus = self.outcome
        return result


@pytest.fixture
def scripted() -> Scripted:
    return Scripted()


@pytest.fixture
def scripted_url(settings: Settings, scripted: Scripted) -> Iterator[str]:
    app = create_app(settings, resolvers=ResolverSet.single(scripted, "scripted", timeout=0.5))
    with running_server(app) as url:
        yield url


@pytest.fixture
async def scripted_client(scripted_url: str) -> Any:
    async with httpx.AsyncClient(base_url=scripted_url, timeout=10) as http:
        yield http


async def test_bill_is_cached(
    scripted_client: httpx.AsyncClient, simulator: DokuSimulator, scripted: Scripted
) -> None:
    token = await simulator.get_token(scripted_client)
    for _ in range(3):
        response = await inquire(scripted_client, simulator, token, body_for("8889900001234"))
        assert response.json()["virtualAccountData"]["totalAmount"]["value"] == "150000.00"
    assert scripted.calls == 1


async def test_concurrent_misses_share_one_resolver_call(
    scripted_client: httpx.AsyncClient, simulator: DokuSimulator, scripted: Scripted
) -> None:
    scripted.delay = 0.2
    token = await simulator.get_token(scripted_client)
    responses = await asyncio.gather(
        *(inquire(scripted_client, simulator, token, body_for("8889900001234")) for _ in range(10))
    )
    assert {r.json()["responseCode"] for r in responses} == {"2002400"}
    assert scripted.calls == 1


async def test_timeout_answers_5042400_and_releases_external_id(
    scripted_client: httpx.AsyncClient, simulator: DokuSimulator, scripted: Scripted
) -> None:
    scripted.delay = 2.0
    token = await simulator.get_token(scripted_client)
    request = simulator.inquiry_request(token, body_for("8889900001234"), external_id="slow")
    response = await send(scripted_client, request)
    assert response.status_code == 504
    assert response.json()["responseCode"] == "5042400"
    scripted.delay = 0.0
    retry = await send(scripted_client, request)
    assert retry.json()["responseCode"] == "2002400"
    assert scripted.calls == 2


async def test_unavailable_is_not_cached(
    scripted_client: httpx.AsyncClient, simulator: DokuSimulator, scripted: Scripted
) -> None:
    scripted.outcome = ResolverUnavailable("db down")
    token = await simulator.get_token(scripted_client)
    first = await inquire(scripted_client, simulator, token, body_for("8889900001234"))
    assert first.json()["responseCode"] == "5042400"
    scripted.outcome = BillStatus.ALREADY_PAID
    second = await inquire(scripted_client, simulator, token, body_for("8889900001234"))
    assert second.json()["responseCode"] == "4042414"
    assert scripted.calls == 2


async def test_resolver_crash_is_5002401_without_details(
    scripted_client: httpx.AsyncClient,
    simulator: DokuSimulator,
    scripted: Scripted,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scripted.outcome = RuntimeError("password=hunter2 leaked in a message")
    token = await simulator.get_token(scripted_client)
    with caplog.at_level(logging.ERROR, logger="doku_gateway"):
        response = await inquire(scripted_client, simulator, token, body_for("8889900001234"))
    assert response.status_code == 500
    assert response.json() == {
        "responseCode": "5002401",
        "responseMessage": "Internal Server Error",
    }
    assert any(r.exc_info for r in caplog.records), "the traceback is logged"


@pytest.mark.parametrize(
    "bill",
    [
        Bill(name="Budi", amount=Decimal("10.005")),
        Bill(name="Budi", amount=Decimal("10.00"), min_amount=Decimal("1.00")),
        Bill(
            name="Budi",
            amount=Decimal("0.00"),
            trx_type="O",
            min_amount=Decimal("9.00"),
            max_amount=Decimal("1.00"),
        ),
        Bill(name="Budi <script>", amount=Decimal("10.00")),
        Bill(name="Budi", amount=10.0),  # type: ignore[arg-type]
    ],
)
async def test_invalid_bill_is_never_sent(
    scripted_client: httpx.AsyncClient,
    simulator: DokuSimulator,
    scripted: Scripted,
    bill: Bill,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scripted.outcome = bill
    token = await simulator.get_token(scripted_client)
    with caplog.at_level(logging.ERROR, logger="doku_gateway"):
        response = await inquire(scripted_client, simulator, token, body_for("8889900001234"))
    assert response.json()["responseCode"] == "5002401"
    assert any("invalid bill" in r.getMessage() for r in caplog.records)


async def test_expired_bill_in_cache_answers_expired(
    scripted_client: httpx.AsyncClient, simulator: DokuSimulator, scripted: Scripted
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    scripted.outcome = Bill(name="Budi", amount=Decimal("5.00"), expires_at=soon)
    token = await simulator.get_token(scripted_client)
    first = await inquire(scripted_client, simulator, token, body_for("8889900001234"))
    assert first.json()["virtualAccountData"]["expiredDate"]
    scripted.outcome = BillStatus.EXPIRED
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        later = await inquire(scripted_client, simulator, token, body_for("8889900001234"))
        if later.json()["responseCode"] == "4042419":
            break
        await asyncio.sleep(0.1)
    assert later.json()["responseCode"] == "4042419"


# --- observability ------------------------------------------------------------------------------


async def test_metrics_carry_no_va_numbers(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    await inquire(client, simulator, token, body_for("8889900001234"))
    await inquire(client, simulator, token, body_for("8889911900001"))
    text = (await client.get("/metrics")).text
    assert 'doku_gateway_inquiries_total{resolver="demo",result="bill"} 1.0' in text
    assert 'doku_gateway_inquiries_total{resolver="demo",result="not_found"} 1.0' in text
    assert "doku_gateway_inquiry_duration_seconds_bucket" in text
    assert "8889900001234" not in text and "00001234" not in text


async def test_nothing_secret_is_logged(
    client: httpx.AsyncClient,
    simulator: DokuSimulator,
    token: str,
    keys: Keys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    signatures: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for change in (
            {"X-SIGNATURE": "B" * 88},
            {"Authorization": "Bearer " + token[:-4]},
            {"X-TIMESTAMP": "bad"},
            {},
        ):
            request = simulator.inquiry_request(token, body_for("8889900001234"))
            request.headers.update(change)
            signatures.append(request.headers["X-SIGNATURE"])
            await send(client, request)
        bad_token = simulator.token_request()
        signatures.append(bad_token.headers["X-SIGNATURE"])
        bad_token.headers["X-CLIENT-KEY"] = "someone"
        await send(client, bad_token)
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert caplog.records, "refusals are logged"
    for secret in (
        keys.client_secret,
        token,
        token[:-4],
        *signatures,
        private_key_pem(keys.merchant).decode().splitlines()[1],
    ):
        assert secret not in text


async def test_json_of_answers_is_compact_and_utf8(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    response = await inquire(client, simulator, token, body_for("8889900001234"))
    assert b": " not in response.content
    assert json.loads(response.content) == response.json()


# --- review findings ----------------------------------------------------------------------------


async def test_headers_then_silence_gets_an_answer(keys: Keys, simulator: DokuSimulator) -> None:
    settings = make_settings(keys, http={"body_timeout": 0.3})
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
        request = simulator.inquiry_request(token, body_for("8889900001234"))
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
        writer.write(
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: 10\r\n\r\n".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), timeout=10)
        writer.close()
    assert b'"responseCode":"4002400"' in answer


@pytest.mark.parametrize(
    "timestamp_form", ["%Y%m%dT%H%M%SZ", "%G-W%V-%uT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+0000"]
)
async def test_unusual_iso_forms_are_refused(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str, timestamp_form: str
) -> None:
    timestamp = datetime.now(UTC).strftime(timestamp_form)
    request = simulator.inquiry_request(token, body_for("8889900001234"), timestamp=timestamp)
    assert (await send(client, request)).json()["responseCode"] == "4002401"


async def test_lone_surrogate_is_echoed_escaped_not_crashed(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    document = body_for("8889900001234", inquiryRequestId="\ud800")
    request = simulator.inquiry_request(token, document, ensure_ascii=True, external_id="sur")
    first = await send(client, request)
    again = await send(client, request)
    assert first.status_code == 200
    assert b'"inquiryRequestId":"\\ud800"' in first.content
    assert again.content == first.content


async def test_identical_retry_after_a_5xx_is_processed_afresh(
    scripted_client: httpx.AsyncClient, simulator: DokuSimulator, scripted: Scripted
) -> None:
    scripted.outcome = ResolverUnavailable("billing db down")
    scripted.delay = 0.3
    token = await simulator.get_token(scripted_client)
    request = simulator.inquiry_request(token, body_for("8889900001234"), external_id="ext-5xx")
    first_task = asyncio.create_task(send(scripted_client, request))
    await asyncio.sleep(0.1)  # the retry arrives while the first attempt is still running
    retry = await send(scripted_client, request)
    first = await first_task
    assert first.json()["responseCode"] == "5042400"
    assert retry.json()["responseCode"] == "5042400"  # tried again, not 409
    assert scripted.calls == 2


async def test_unhashable_free_text_is_an_invalid_bill(
    scripted_client: httpx.AsyncClient, simulator: DokuSimulator, scripted: Scripted
) -> None:
    from gateway import FreeText

    scripted.outcome = Bill(name="Budi", amount=Decimal("1.00"), free_text=[FreeText("a", "b")])  # type: ignore[arg-type]
    token = await simulator.get_token(scripted_client)
    for _ in range(2):
        response = await inquire(scripted_client, simulator, token, body_for("8889900001234"))
        assert response.json()["responseCode"] == "5002401"


async def test_expiry_in_utc_is_sent_in_wib(
    scripted_client: httpx.AsyncClient, simulator: DokuSimulator, scripted: Scripted
) -> None:
    # asyncpg hands back timestamptz values in UTC.
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    scripted.outcome = Bill(name="Budi", amount=Decimal("1.00"), expires_at=expiry)
    token = await simulator.get_token(scripted_client)
    response = await inquire(scripted_client, simulator, token, body_for("8889900001234"))
    sent = response.json()["virtualAccountData"]["expiredDate"]
    assert sent.endswith("+07:00")
    assert datetime.fromisoformat(sent) == expiry


async def test_naive_expiry_is_an_invalid_bill_with_a_log_line(
    scripted_client: httpx.AsyncClient,
    simulator: DokuSimulator,
    scripted: Scripted,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scripted.outcome = Bill(
        name="Budi", amount=Decimal("1.00"), expires_at=datetime(2099, 1, 1, 12, 0)
    )
    token = await simulator.get_token(scripted_client)
    with caplog.at_level(logging.ERROR, logger="doku_gateway"):
        response = await inquire(scripted_client, simulator, token, body_for("8889900001234"))
    assert response.json()["responseCode"] == "5002401"
    lines = [r.getMessage() for r in caplog.records if "naive" in r.getMessage()]
    assert len(lines) == 1
    assert "resolver scripted" in lines[0]
    assert "2099-01-01T12:00:00" in lines[0]


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "refused" in r.getMessage()]


async def test_skewed_timestamp_refusal_logs_the_clock_offset_once(
    client: httpx.AsyncClient,
    simulator: DokuSimulator,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seven_hours_behind = format_timestamp(datetime.now(UTC) - timedelta(hours=7))
    request = simulator.inquiry_request(
        token, body_for("8889900001234"), timestamp=seven_hours_behind, external_id="skewed-1"
    )
    with caplog.at_level(logging.INFO, logger="doku_gateway"):
        assert (await send(client, request)).json()["responseCode"] == "4002401"
    [line] = _refusals(caplog)
    assert line.__dict__["external_id"] == "skewed-1"
    assert line.__dict__["partner"] == simulator.client_id
    assert line.__dict__["reason"] == "X-TIMESTAMP"
    assert abs(line.__dict__["clock_offset_s"] + 7 * 3600) < 60


async def test_body_field_refusal_is_logged_once_with_masked_va(
    client: httpx.AsyncClient,
    simulator: DokuSimulator,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = body_for("8889900001234")
    del document["additionalInfo"]
    request = simulator.inquiry_request(token, document, external_id="no-info-1")
    with caplog.at_level(logging.INFO, logger="doku_gateway"):
        assert (await send(client, request)).json()["responseCode"] == "4002402"
    [line] = _refusals(caplog)
    assert line.__dict__["response_code"] == "4002402"
    assert line.__dict__["reason"] == "additionalInfo"
    assert line.__dict__["va"] == "*********1234"
    assert line.__dict__["external_id"] == "no-info-1"
    assert line.__dict__["latency_ms"] >= 0
