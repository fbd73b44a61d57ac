"""DOKU's official Python SDK (doku-python-library 1.1.72) acting as DOKU against the gateway.

The SDK signs with ``json.dumps(body, separators=(',', ':'))`` (ASCII-escaped) and its HTTP
client sends ``json.dumps(body)`` with spaces, so the bytes on the wire are not the bytes it
signed: exactly the situation the gateway's canonicalisation must handle.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.doku.simulator import inquiry_body
from gateway.snap.keys import private_key_pem, public_key_pem
from gateway.web.app import create_app

from .support import Keys, make_settings, running_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    sdk = pytest.importorskip("doku_python_library.src.services.token_service")
TokenService: Any = sdk.TokenService

INQUIRY = "/v1.1/transfer-va/inquiry"


@pytest.fixture(scope="module")
def base_url(keys: Keys) -> Iterator[str]:
    with running_server(create_app(make_settings(keys))) as url:
        yield url


def sdk_token(base_url: str, keys: Keys) -> str:
    timestamp = TokenService.get_timestamp()
    signature = TokenService.create_signature(
        private_key_pem(keys.doku).decode(), f"{keys.client_id}|{timestamp}"
    )
    response = httpx.post(
        base_url + "/v1.0/access-token/b2b",
        headers={
            "X-TIMESTAMP": timestamp,
            "X-CLIENT-KEY": keys.client_id,
            "X-SIGNATURE": signature,
            "Content-Type": "application/json",
        },
        json={"grantType": "client_credentials", "additionalInfo": ""},
    )
    body = response.json()
    assert body["responseCode"] == "2007300", body
    return str(body["accessToken"])


def sdk_inquiry(
    base_url: str, keys: Keys, token: str, body: dict[str, Any], external_id: str
) -> httpx.Response:
    timestamp = TokenService.get_timestamp()
    signature = TokenService.generate_symmetric_signature(
        "POST", INQUIRY, token, body, timestamp, keys.client_secret
    )
    return httpx.post(
        base_url + INQUIRY,
        headers={
            "Authorization": f"Bearer {token}",
            "X-TIMESTAMP": timestamp,
            "X-SIGNATURE": signature,
            "X-PARTNER-ID": keys.client_id,
            "X-EXTERNAL-ID": external_id,
            "CHANNEL-ID": "VA004",
            "Content-Type": "application/json",
        },
        # What requests' json= sends: default separators, ASCII escapes.
        content=json.dumps(body).encode(),
    )


def test_sdk_accepts_our_token(base_url: str, keys: Keys) -> None:
    token = sdk_token(base_url, keys)
    merchant_public = public_key_pem(keys.merchant.public_key()).decode()
    claims = TokenService.validate_token_b2b(token, merchant_public)
    assert claims and claims["clientId"] == keys.client_id


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("8889900001234", "2002400"),
        ("8889911600001", "2002400"),
        ("8889911700001", "4042414"),
        ("8889911800001", "4042419"),
        ("8889911900001", "4042412"),
    ],
)
def test_sdk_signed_inquiries(base_url: str, keys: Keys, code: str, expected: str) -> None:
    token = sdk_token(base_url, keys)
    response = sdk_inquiry(base_url, keys, token, inquiry_body(code, "   88899"), "sdk-" + code)
    assert response.json()["responseCode"] == expected
    assert response.status_code == int(expected[:3])


def test_sdk_signed_non_ascii_body(base_url: str, keys: Keys) -> None:
    token = sdk_token(base_url, keys)
    body = inquiry_body("8889900001234", "   88899")
    body["additionalInfo"]["note"] = "Budi Śantoso / Jl. Merdeka"
    response = sdk_inquiry(base_url, keys, token, body, "sdk-non-ascii")
    assert response.json()["responseCode"] == "2002400"


def test_sdk_signature_with_wrong_secret_is_refused(base_url: str, keys: Keys) -> None:
    token = sdk_token(base_url, keys)
    other = Keys(keys.doku, keys.merchant, keys.client_id, "SK-not-the-secret")
    response = sdk_inquiry(
        base_url, other, token, inquiry_body("8889900001234", "   88899"), "sdk-wrong"
    )
    assert response.json()["responseCode"] == "4012400"


def test_sdk_signed_payment_notification_end_to_end(base_url: str, keys: Keys) -> None:
    """DOKU's SDK posts one payment five times (as its retries would): one ack shape, and the
    closed demo bill then answers "already paid"."""
    from concurrent.futures import ThreadPoolExecutor

    from gateway.doku.simulator import payment_body

    token = sdk_token(base_url, keys)
    code = "8889900077777"
    assert (
        sdk_inquiry(base_url, keys, token, inquiry_body(code, "   88899"), "sdk-before-pay").json()[
            "responseCode"
        ]
        == "2002400"
    )
    body = payment_body(code, "   88899", "25000.00", payment_request_id="SDK-PR-1")

    def notify(index: int) -> httpx.Response:
        timestamp = TokenService.get_timestamp()
        path = "/v1.0/transfer-va/payment"
        signature = TokenService.generate_symmetric_signature(
            "POST", path, token, body, timestamp, keys.client_secret
        )
        return httpx.post(
            base_url + path,
            headers={
                "Authorization": f"Bearer {token}",
                "X-TIMESTAMP": timestamp,
                "X-SIGNATURE": signature,
                "X-PARTNER-ID": keys.client_id,
                "X-EXTERNAL-ID": f"sdk-pay-{index}",
                "CHANNEL-ID": "VA004",
                "Content-Type": "application/json",
            },
            content=json.dumps(body).encode(),
        )

    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(notify, range(5)))
    assert {r.json()["responseCode"] for r in responses} == {"2002500"}
    assert len({r.content for r in responses}) == 1
    assert responses[0].json()["virtualAccountData"]["paymentRequestId"] == "SDK-PR-1"

    from .support import poll

    def paid() -> bool:
        answer = sdk_inquiry(
            base_url,
            keys,
            token,
            inquiry_body(code, "   88899"),
            f"sdk-after-pay-{time.monotonic_ns()}",
        )
        return bool(answer.json()["responseCode"] == "4042414")

    poll(paid, timeout=10, interval=0.05)
