"""The UAT engine against real gateways (uvicorn over loopback sockets): a well configured one
passes every scenario; misconfigured ones fail, and the report names the cause."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest

from gateway.doku.uat import (
    GatewayUnreachable,
    ScenarioResult,
    UatReport,
    UatTarget,
    demo_samples,
    run_uat,
)
from gateway.web.app import create_app

from ..support import Keys, free_port, make_settings, running_server

ALL = (
    "token",
    "token-bad-signature",
    "inquiry-payable",
    "inquiry-open",
    "inquiry-limits",
    "inquiry-paid",
    "inquiry-expired",
    "inquiry-unknown",
    "replay-identical",
    "replay-other-body",
    "bad-signature",
    "expired-token",
    "stale-timestamp",
    "pretty-body",
    "non-ascii-body",
    "payment",
    "payment-repeat",
)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
LONG_BASE64 = re.compile(r"[A-Za-z0-9+/]{80,}={0,2}")


def target(keys: Keys, url: str, **changes: Any) -> UatTarget:
    """What DOKU knows: the keys the test gateways trust, the demo resolver's sample VAs."""
    base = UatTarget(
        url=url,
        client_id=keys.client_id,
        client_secret=keys.client_secret,
        samples=demo_samples(),
        doku_private_key=keys.doku,
        merchant_private_key=keys.merchant,
    )
    return dataclasses.replace(base, **changes)


def run(uat_target: UatTarget) -> UatReport:
    return asyncio.run(run_uat(uat_target))


def by_id(report: UatReport) -> dict[str, ScenarioResult]:
    return {result.id: result for result in report.results}


def serve(keys: Keys, **sections: Any) -> Iterator[str]:
    with running_server(create_app(make_settings(keys, **sections))) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(keys: Keys) -> Iterator[str]:
    """A correctly configured gateway with the demo resolver."""
    yield from serve(keys)


@pytest.fixture(scope="module")
def other_secret(keys: Keys) -> Iterator[str]:
    """Misconfigured: its doku.client_secret is not the one DOKU signs with."""
    settings = make_settings(keys)
    credentials = dataclasses.replace(settings.credentials, client_secret="SK-not-the-dashboard")
    with running_server(create_app(settings.replace(credentials=credentials))) as url:
        yield url


@pytest.fixture(scope="module")
def log_only(keys: Keys) -> Iterator[str]:
    yield from serve(keys, security={"signature_mode": "log-only"})


@pytest.fixture(scope="module")
def prefixed(keys: Keys) -> Iterator[str]:
    """A gateway told that its proxy strips /doku (http.path_prefix)."""
    yield from serve(keys, http={"path_prefix": "/doku"})


def stripping_proxy(upstream: str, prefix: str) -> Any:
    """An ingress that serves ``prefix`` and forwards without it (as Traefik's StripPrefix or
    nginx ``proxy_pass .../``), saying so in X-Forwarded-Prefix."""

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        if not path.startswith(prefix + "/"):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"no route"})
            return
        headers = [
            (k.decode(), v.decode())
            for k, v in scope["headers"]
            if k not in (b"host", b"content-length")
        ]
        headers.append(("x-forwarded-prefix", prefix))
        async with httpx.AsyncClient(base_url=upstream) as client:
            answer = await client.post(path[len(prefix) :], headers=headers, content=body)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [(k.encode(), v.encode()) for k, v in answer.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": answer.content})

    return app


# --- a good gateway -----------------------------------------------------------------------------


def test_every_scenario_passes_against_a_well_configured_gateway(gateway: str, keys: Keys) -> None:
    report = run(target(keys, gateway))
    assert [(r.id, r.status, r.problems) for r in report.results] == [(i, "pass", ()) for i in ALL]
    assert report.passed and report.causes == ()
    assert report.clock_offset is not None and abs(report.clock_offset) <= 2
    assert all(result.exchanges for result in report.results)
    replay = by_id(report)["replay-identical"].exchanges
    assert replay[0].request_headers["X-EXTERNAL-ID"] == replay[1].request_headers["X-EXTERNAL-ID"]


def test_the_report_carries_no_secret_token_or_signature(gateway: str, keys: Keys) -> None:
    text = json.dumps(run(target(keys, gateway)).to_dict(), ensure_ascii=False)
    assert keys.client_secret not in text
    assert "PRIVATE KEY" not in text
    assert JWT.search(text) is None  # tokens are cut to a stub
    assert LONG_BASE64.search(text) is None  # so are the 88- and 344-character signatures
    assert '"Authorization": "Bearer eyJ' in text  # recognisable, not removed


def test_without_the_doku_key_tokens_are_minted_and_the_rest_still_runs(
    gateway: str, keys: Keys
) -> None:
    # After go-live the gateway trusts DOKU's real key, which nobody but DOKU holds.
    report = run(target(keys, gateway, doku_private_key=None))
    results = by_id(report)
    assert results["token"].status == "skip"
    assert results["token-bad-signature"].status == "pass"
    assert report.passed
    assert {r.status for r in report.results if r.id != "token"} == {"pass"}


def test_without_the_merchant_key_an_expired_token_is_still_refused(
    gateway: str, keys: Keys
) -> None:
    report = run(target(keys, gateway, merchant_private_key=None))
    expired = by_id(report)["expired-token"]
    assert expired.status == "pass"
    assert any("backdated" in note for note in expired.notes)


def test_no_payment_skips_the_notifications(gateway: str, keys: Keys) -> None:
    report = run(target(keys, gateway, payments=False))
    results = by_id(report)
    assert (results["payment"].status, results["payment-repeat"].status) == ("skip", "skip")
    assert report.passed


def test_missing_sample_vas_skip_their_scenarios(gateway: str, keys: Keys) -> None:
    samples = dataclasses.replace(demo_samples(), open=None, expired=None)
    report = run(target(keys, gateway, samples=samples))
    skipped = {r.id for r in report.results if r.status == "skip"}
    assert skipped == {"inquiry-open", "inquiry-limits", "inquiry-expired"}
    assert report.passed


def test_a_sample_va_with_the_wrong_outcome_is_named(gateway: str, keys: Keys) -> None:
    samples = dataclasses.replace(demo_samples(), paid="8889900005555")  # a payable bill
    report = run(target(keys, gateway, samples=samples, payments=False))
    paid = by_id(report)["inquiry-paid"]
    assert paid.status == "fail"
    assert paid.problems == ("expected 4042414, got 2002400 Successful",)
    assert paid.cause is not None and "answers a bill for the 'paid' sample VA" in paid.cause
    assert not report.passed


# --- misconfigured gateways ---------------------------------------------------------------------


def test_a_wrong_client_secret_fails_every_signed_call_and_is_named(
    other_secret: str, keys: Keys
) -> None:
    report = run(target(keys, other_secret))
    results = by_id(report)
    assert results["token"].status == "pass"  # the RSA-signed token call needs no secret
    assert results["inquiry-payable"].status == "fail"
    assert results["inquiry-payable"].problems[0].startswith("expected 2002400, got 4012400")
    assert not report.passed
    [cause] = {r.cause for r in report.results if r.status == "fail"}
    assert cause is not None and "client secret differs" in cause
    assert "security.signature_diagnostics" in cause
    assert report.causes == (cause,)


def test_a_wrong_path_prefix_in_front_of_the_gateway_is_named(gateway: str, keys: Keys) -> None:
    # DOKU was given a URL with /doku, but nothing in front of the gateway serves that prefix.
    report = run(target(keys, gateway + "/doku"))
    token = by_id(report)["token"]
    assert token.status == "fail"
    assert token.exchanges[0].path == "/doku/v1.0/access-token/b2b"
    assert token.cause is not None
    assert token.cause.startswith("HTTP 404 without a SNAP answer on /doku/v1.0/access-token/b2b")
    assert "wrong path prefix" in token.cause


def test_a_proxy_prefix_the_gateway_was_not_told_about_is_named(gateway: str, keys: Keys) -> None:
    with running_server(stripping_proxy(gateway, "/doku"), lifespan="off") as proxy:
        report = run(target(keys, proxy + "/doku"))
    results = by_id(report)
    assert results["token"].status == "pass"  # routed: the token call signs no path
    payable = results["inquiry-payable"]
    assert payable.status == "fail"
    assert payable.cause == (
        "the gateway verifies the path without '/doku': the proxy strips it, so set "
        "http.path_prefix = '/doku' in the gateway's config"
    )
    # The probe that found it: signed without the prefix, still sent through the proxy.
    assert payable.exchanges[-1].path == "/doku/v1.1/transfer-va/inquiry"
    assert payable.exchanges[-1].status == 200


def test_the_same_proxy_with_http_path_prefix_set_passes(prefixed: str, keys: Keys) -> None:
    with running_server(stripping_proxy(prefixed, "/doku"), lifespan="off") as proxy:
        report = run(target(keys, proxy + "/doku"))
    assert [r.id for r in report.results if r.status != "pass"] == []


def test_log_only_signatures_are_named(log_only: str, keys: Keys) -> None:
    report = run(target(keys, log_only, payments=False))
    bad = by_id(report)["bad-signature"]
    assert bad.status == "fail"
    assert bad.cause is not None and "log-only" in bad.cause


def test_a_gateway_clock_hours_off_is_named(keys: Keys) -> None:
    settings = make_settings(keys)
    app = create_app(settings, clock=lambda: time.time() + 7200)
    with running_server(app) as url:
        report = run(target(keys, url, payments=False))
    token = by_id(report)["token"]
    assert token.status == "fail"
    assert report.clock_offset is not None and abs(report.clock_offset - 7200) <= 2
    assert token.cause is not None and "X-TIMESTAMP refused: the clocks differ" in token.cause
    assert re.search(r"clock is \+(7199|7200|7201) s off", token.cause)  # measured, ±1 s


def test_nothing_answering_raises_naming_the_url(keys: Keys) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GatewayUnreachable) as info:
        run(target(keys, url))
    assert str(info.value).startswith(f"nothing answers at {url} (")
