"""``security.signature_diagnostics`` end to end: a real gateway logs the likely cause of a bad
X-SIGNATURE or X-TIMESTAMP, in one line without secrets, and says nothing when it is off."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gateway.doku.simulator import DokuSimulator, SignedRequest, inquiry_body
from gateway.snap.keys import public_key_pem
from gateway.snap.timestamps import WIB
from gateway.web.app import create_app

from ...support import Keys, make_settings, running_server

PREFIX = "/doku"
INQUIRY = "/v1.1/transfer-va/inquiry"
LOGGER = "doku_gateway.transaction"


@pytest.fixture(scope="module")
def diagnosing(keys: Keys) -> Iterator[str]:
    """A gateway behind a (pretend) proxy that strips /doku, with diagnostics on."""
    settings = make_settings(
        keys, security={"signature_diagnostics": True}, http={"path_prefix": PREFIX}
    )
    with running_server(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def quiet(keys: Keys) -> Iterator[str]:
    """The same gateway with diagnostics at their default (off)."""
    with running_server(create_app(make_settings(keys, http={"path_prefix": PREFIX}))) as url:
        yield url


def exchange(
    base_url: str, keys: Keys, sign_path: str, timestamp: str | None = None
) -> tuple[int, str, str]:
    """Get a token, send one inquiry signed over ``sign_path``; (status, token, signature)."""
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        token_request = simulator.token_request()
        token = client.post(
            token_request.path, headers=token_request.headers, content=token_request.body
        ).json()["accessToken"]
        signed = simulator.transaction_request(
            sign_path, token, inquiry_body("8889900001234", "88899"), timestamp=timestamp
        )
        # The proxy stripped the prefix: the gateway is reached at the bare path.
        request = SignedRequest(INQUIRY, signed.headers, signed.body)
        response = client.post(request.path, headers=request.headers, content=request.body)
    return response.status_code, token, request.headers["X-SIGNATURE"]


def diagnoses(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "diagnosis:" in r.getMessage()]


def test_a_path_signed_without_the_prefix_is_diagnosed_in_one_line(
    diagnosing: str, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    status, token, signature = exchange(diagnosing, keys, INQUIRY)
    assert status == 401
    [line] = diagnoses(caplog)
    assert line.startswith("inquiry: X-SIGNATURE did not verify; diagnosis:")
    assert "without http.path_prefix '/doku'" in line
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (keys.client_secret, token, signature):
        assert secret not in everything


def test_a_correctly_signed_request_logs_no_diagnosis(
    diagnosing: str, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    status, _, _ = exchange(diagnosing, keys, PREFIX + INQUIRY)
    assert status == 200
    assert diagnoses(caplog) == []


def test_a_timestamp_in_the_wrong_zone_is_diagnosed(
    diagnosing: str, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    # WIB wall-clock time labelled as UTC: seven hours in the future.
    wrong = datetime.now(WIB).replace(tzinfo=UTC, microsecond=0)
    status, _, _ = exchange(
        diagnosing, keys, PREFIX + INQUIRY, timestamp=wrong.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    assert status == 400
    [line] = diagnoses(caplog)
    assert line.startswith("inquiry: X-TIMESTAMP refused; diagnosis:")
    assert "time-zone error" in line


def test_diagnostics_are_off_by_default(
    quiet: str, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    status, _, _ = exchange(quiet, keys, INQUIRY)
    stale = (datetime.now(WIB) - timedelta(hours=1)).isoformat(timespec="seconds")
    stale_status, _, _ = exchange(quiet, keys, PREFIX + INQUIRY, timestamp=stale)
    assert (status, stale_status) == (401, 400)
    assert diagnoses(caplog) == []


def test_a_mistake_made_with_the_next_secret_is_diagnosed(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    # Mid-rotation: the sender already signs with the next secret, over the wrong path.
    doku = {
        "client_id": keys.client_id,
        "client_secret": "the-secret-being-retired",
        "client_secret_next": keys.client_secret,
        "public_key": public_key_pem(keys.doku.public_key()).decode(),
    }
    settings = make_settings(
        keys,
        doku=doku,
        security={"signature_diagnostics": True},
        http={"path_prefix": PREFIX},
    )
    caplog.set_level(logging.INFO, logger=LOGGER)
    with running_server(create_app(settings)) as url:
        status, _, _ = exchange(url, keys, INQUIRY)
    assert status == 401
    [line] = diagnoses(caplog)
    assert "without http.path_prefix '/doku'" in line
    assert "the-secret-being-retired" not in line and keys.client_secret not in line
