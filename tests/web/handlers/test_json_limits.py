"""Issue 8, defect 6: JSON nested too deep, or not strict JSON, is a SNAP 400 at parse time.

Signed with the real secret and a real token, so each body reaches the JSON parser; before the
limit a payment nested a few hundred levels deep was acknowledged by the parser and then failed
in the journal's encoder with a 5xx on every retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.doku.simulator import DokuSimulator, inquiry_body, payment_body
from gateway.snap.signature import SymmetricSigner
from gateway.snap.timestamps import format_timestamp
from gateway.web.app import create_app

from ...support import Keys, make_settings, running_server

pytestmark = pytest.mark.anyio

INQUIRY = "/v1.1/transfer-va/inquiry"
PAYMENT = "/v1.0/transfer-va/payment"
TOKEN = "/v1.0/access-token/b2b"


def nested(depth: int) -> Any:
    """A value whose containers nest ``depth`` levels (``{"n": {"n": … []}}``)."""
    value: Any = []
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def raw_nested(depth: int) -> bytes:
    """Nesting too deep for Python's own encoder: written out directly."""
    return b'{"n":' * (depth - 1) + b"[]" + b"}" * (depth - 1)


def signed(
    simulator: DokuSimulator, token: str, path: str, raw: bytes
) -> tuple[dict[str, str], bytes]:
    """Headers signing ``raw`` as it is (a sender that minified it itself)."""
    timestamp = format_timestamp()
    signature = SymmetricSigner.from_secret(simulator.client_secret).sign(
        "POST", path, token, raw, timestamp
    )
    request = simulator.transaction_request(path, token, {}, timestamp=timestamp)
    return {**request.headers, "X-SIGNATURE": signature}, raw


async def test_inquiry_nested_past_the_limit_is_4002401(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    # Root, additionalInfo, then 31 more levels: 33 in all, one past the default of 32.
    document = inquiry_body("8889900001234", "   88899")
    document["additionalInfo"]["extra"] = nested(31)
    request = simulator.inquiry_request(token, document)
    response = await simulator.send(client, request)
    assert response.status_code == 400
    assert response.json() == {
        "responseCode": "4002401",
        "responseMessage": "Invalid Field Format {body}",
    }


async def test_inquiry_nested_to_the_limit_is_answered(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str
) -> None:
    document = inquiry_body("8889900001234", "   88899")
    document["additionalInfo"]["extra"] = nested(30)  # 32 levels in all
    response = await simulator.send(client, simulator.inquiry_request(token, document))
    assert response.json()["responseCode"] == "2002400"


@pytest.mark.parametrize("depth", [33, 900, 10_000])
async def test_payment_nested_deep_is_4002501_not_a_5xx(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str, depth: int
) -> None:
    body = payment_body("8889900001234", "   88899", "25000.00")
    # The nesting sits inside additionalInfo, written out as raw JSON after the known fields.
    prefix = simulator.payment_request(token, body).body[:-2]  # drop the closing "}}"
    raw = prefix + b',"extra":' + raw_nested(depth) + b"}}"
    headers, content = signed(simulator, token, PAYMENT, raw)
    response = await client.post(PAYMENT, headers=headers, content=content)
    assert response.status_code == 400
    assert response.json()["responseCode"] == "4002501"
    assert response.json()["responseMessage"] == "Invalid Field Format {body}"


@pytest.mark.parametrize(
    "value", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"9" * 5000]
)
async def test_numbers_no_encoder_can_write_back_are_4002401(
    client: httpx.AsyncClient, simulator: DokuSimulator, token: str, value: bytes
) -> None:
    prefix = simulator.inquiry_request(token, inquiry_body("8889900001234", "   88899")).body
    raw = prefix[:-1] + b',"extra":' + value + b"}"
    headers, content = signed(simulator, token, INQUIRY, raw)
    response = await client.post(INQUIRY, headers=headers, content=content)
    assert response.json()["responseCode"] == "4002401"


async def test_token_body_nested_deep_is_4007301(
    client: httpx.AsyncClient, simulator: DokuSimulator
) -> None:
    request = simulator.token_request()
    raw = b'{"grantType":"client_credentials","additionalInfo":' + raw_nested(50) + b"}"
    response = await client.post(TOKEN, headers=request.headers, content=raw)
    assert response.status_code == 400
    assert response.json()["responseCode"] == "4007301"


@pytest.fixture
def shallow_url(keys: Keys) -> Iterator[str]:
    settings = make_settings(keys, http={"max_json_depth": 4})
    with running_server(create_app(settings)) as url:
        yield url


async def test_the_depth_is_configurable(shallow_url: str, simulator: DokuSimulator) -> None:
    async with httpx.AsyncClient(base_url=shallow_url, timeout=10) as client:
        token = await simulator.get_token(client)
        document = inquiry_body("8889900001234", "   88899")
        document["additionalInfo"]["extra"] = nested(3)  # 5 levels: one past 4
        refused = await simulator.send(client, simulator.inquiry_request(token, document))
        document["additionalInfo"]["extra"] = nested(2)
        answered = await simulator.send(client, simulator.inquiry_request(token, document))
    assert refused.json()["responseCode"] == "4002401"
    assert answered.json()["responseCode"] == "2002400"
