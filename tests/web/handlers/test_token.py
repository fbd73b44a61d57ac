from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from gateway.config import Settings
from gateway.doku.simulator import DokuSimulator
from gateway.snap.keys import generate_private_key
from gateway.snap.signature import sign_asymmetric
from gateway.snap.timestamps import WIB, format_timestamp

from ...support import Keys

pytestmark = pytest.mark.anyio


async def post(client: httpx.AsyncClient, headers: dict[str, str], body: bytes) -> httpx.Response:
    return await client.post("/v1.0/access-token/b2b", headers=headers, content=body)


async def test_issues_rs256_token_signed_by_merchant(
    client: httpx.AsyncClient, simulator: DokuSimulator, keys: Keys
) -> None:
    request = simulator.token_request()
    response = await post(client, request.headers, request.body)
    assert response.status_code == 200
    body = response.json()
    assert body["responseCode"] == "2007300"
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 900
    assert response.headers["x-client-key"] == keys.client_id
    assert response.headers["x-timestamp"].endswith("+07:00")
    claims = jwt.decode(body["accessToken"], keys.merchant.public_key(), algorithms=["RS256"])
    assert claims["clientId"] == keys.client_id
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(body["accessToken"])["alg"] == "RS256"


@pytest.mark.parametrize(
    "timestamp",
    ["2024-05-01T03:15:30Z", "2024-05-01T10:15:30+07:00", "2024-05-01T03:15:30.123Z"],
)
async def test_accepts_every_sdk_timestamp_form(
    client: httpx.AsyncClient, simulator: DokuSimulator, timestamp: str
) -> None:
    # Shift the sample to now, keeping its textual form: Z, +07:00, fractional seconds.
    now = datetime.now(UTC)
    if timestamp.endswith("+07:00"):
        text = now.astimezone(WIB).strftime("%Y-%m-%dT%H:%M:%S+07:00")
    elif "." in timestamp:
        text = now.strftime("%Y-%m-%dT%H:%M:%S.123Z")
    else:
        text = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    request = simulator.token_request(text)
    response = await post(client, request.headers, request.body)
    assert response.json()["responseCode"] == "2007300"


@pytest.mark.parametrize("header", ["X-TIMESTAMP", "X-CLIENT-KEY", "X-SIGNATURE"])
async def test_missing_header(
    client: httpx.AsyncClient, simulator: DokuSimulator, header: str
) -> None:
    request = simulator.token_request()
    headers = {k: v for k, v in request.headers.items() if k != header}
    response = await post(client, headers, request.body)
    assert response.status_code == 400
    assert response.json() == {
        "responseCode": "4007302",
        "responseMessage": f"Missing Mandatory Field {{{header}}}",
    }


async def test_timestamp_outside_window(
    client: httpx.AsyncClient, simulator: DokuSimulator
) -> None:
    stale = format_timestamp(datetime.now(UTC) - timedelta(seconds=301))
    request = simulator.token_request(stale)
    response = await post(client, request.headers, request.body)
    assert response.status_code == 400
    assert response.json()["responseCode"] == "4007301"
    assert "X-TIMESTAMP" in response.json()["responseMessage"]


async def test_naive_timestamp_refused(client: httpx.AsyncClient, simulator: DokuSimulator) -> None:
    naive = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    request = simulator.token_request(naive)
    response = await post(client, request.headers, request.body)
    assert response.json()["responseCode"] == "4007301"


async def test_foreign_client_key(client: httpx.AsyncClient, simulator: DokuSimulator) -> None:
    request = simulator.token_request()
    headers = dict(request.headers, **{"X-CLIENT-KEY": "BRN-9999-0000000000000"})
    response = await post(client, headers, request.body)
    assert response.status_code == 401
    assert response.json()["responseCode"] == "4017300"


async def test_signature_by_another_key(
    client: httpx.AsyncClient, simulator: DokuSimulator, keys: Keys
) -> None:
    request = simulator.token_request()
    forged = sign_asymmetric(generate_private_key(), keys.client_id, request.headers["X-TIMESTAMP"])
    response = await post(client, dict(request.headers, **{"X-SIGNATURE": forged}), request.body)
    assert response.status_code == 401
    assert response.json()["responseCode"] == "4017300"
    assert "accessToken" not in response.json()


async def test_signature_not_base64(client: httpx.AsyncClient, simulator: DokuSimulator) -> None:
    request = simulator.token_request()
    response = await post(client, dict(request.headers, **{"X-SIGNATURE": "@@@"}), request.body)
    assert response.json()["responseCode"] == "4017300"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"not json", "4007301", "body"),
        (b"[]", "4007301", "body"),
        (b"{}", "4007302", "grantType"),
        (json.dumps({"grantType": "password"}).encode(), "4007301", "grantType"),
    ],
)
async def test_bad_body(
    client: httpx.AsyncClient, simulator: DokuSimulator, body: bytes, code: str, field: str | None
) -> None:
    request = simulator.token_request()
    response = await post(client, request.headers, body)
    assert response.status_code == int(code[:3])
    assert response.json()["responseCode"] == code
    if field:
        assert field in response.json()["responseMessage"]


async def test_expires_in_as_string(keys: Keys, simulator: DokuSimulator) -> None:
    from gateway.web.app import create_app

    from ...support import make_settings, running_server

    settings: Settings = make_settings(keys, security={"expires_in_type": "string"})
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            request = simulator.token_request()
            response = await post(http, request.headers, request.body)
    assert response.json()["expiresIn"] == "900"
