"""Redis paused, killed and restarted under concurrent load, against a real gateway process.

DOKU keeps sending inquiries and payment notifications while Redis stalls (SIGSTOP) and
crashes (SIGKILL, restarted from its append-only file). Every request gets a SNAP answer; every
notification DOKU keeps retrying is acknowledged once Redis is back; every acknowledged payment
reaches the merchant's hook; the gateway uses Redis again without a restart.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.doku.simulator import DokuSimulator, inquiry_body, payment_body

from ..support import Keys, RedisServer, poll, start_redis, write_config
from ._process import GatewayProcess

pytestmark = pytest.mark.anyio

PARTNER = "   88899"
PAYMENTS = 60
INQUIRIES = 120


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    """Redis as a payment journal must run: every write fsync'd before it is acknowledged."""
    server = start_redis("--appendonly", "yes", "--appendfsync", "always")
    try:
        yield server
    finally:
        server.resume()
        server.stop()


@pytest.fixture
def gateway(tmp_path: Path, keys: Keys, durable_redis: RedisServer) -> Iterator[GatewayProcess]:
    resolvers = f"""
[[resolvers]]
name = "counting"
use = "tests.sample_resolvers:PaymentCountingResolver"
default = true
options = {{ log = "{tmp_path / "calls.log"}", payments = "{tmp_path / "hook.log"}" }}
"""
    sections = f"""
[cache]
url = "{durable_redis.url}"
redis_retry_interval = 0.2

[payment]
journal = "redis"
shards = 2
backoff_initial = 0.05
backoff_max = 0.5
"""
    config = write_config(tmp_path, keys, sections, resolvers=resolvers)
    process = GatewayProcess(config, tmp_path / "gateway.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def test_redis_stalls_and_crashes_under_load(
    gateway: GatewayProcess, durable_redis: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    acknowledged: set[str] = set()
    answers: Counter[str] = Counter()
    ids = itertools.count()

    async with httpx.AsyncClient(base_url=gateway.url, timeout=15) as http:
        token = await simulator.get_token(http)

        async def notify(n: int) -> None:
            """One payment, retried as DOKU retries until it is acknowledged."""
            await asyncio.sleep(n * 0.06)  # spread over the fault window (about 3.6 s)
            code = f"88899{n:08d}"
            prid = f"PAY-{n:04d}"
            document = payment_body(code, PARTNER, "12345.00", payment_request_id=prid)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while loop.time() < deadline:
                request = simulator.payment_request(
                    token, document, external_id=f"ext-pay-{next(ids)}"
                )
                response = await simulator.send(http, request)
                code_seen = response.json()["responseCode"]
                answers[code_seen] += 1
                if code_seen == "2002500":
                    acknowledged.add(prid)
                    return
                assert response.status_code >= 500, response.text
                await asyncio.sleep(0.1)
            log = gateway.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{prid} never acknowledged: {answers}\n{log}")

        async def inquire(n: int) -> None:
            await asyncio.sleep(n * 0.03)
            code = f"88899{50_000_000 + n:08d}"
            response = await simulator.send(
                http, simulator.inquiry_request(token, inquiry_body(code, PARTNER))
            )
            # Answered, one way or another, with a SNAP code: never a dropped connection.
            answers[response.json()["responseCode"]] += 1

        async def faults() -> None:
            await asyncio.sleep(0.3)
            durable_redis.pause()
            await asyncio.sleep(1.5)
            durable_redis.resume()
            await asyncio.sleep(0.5)
            durable_redis.kill()
            await asyncio.sleep(1.0)
            durable_redis.restart()

        # Payments and inquiries start spread over the fault window, so both are in flight
        # through the stall, the crash and the restart.
        await asyncio.gather(
            faults(),
            *(notify(n) for n in range(PAYMENTS)),
            *(inquire(n) for n in range(INQUIRIES)),
        )

    assert acknowledged == {f"PAY-{n:04d}" for n in range(PAYMENTS)}
    assert answers["2002400"] > 0  # inquiries kept being answered
    # The faults did hit: some notifications were refused (5xx) and acknowledged on a retry.
    refused = sum(n for code, n in answers.items() if code.startswith("5"))
    assert refused > 0, answers

    hook_log = tmp_path / "hook.log"

    def delivered() -> Counter[str]:
        if not hook_log.exists():
            return Counter()
        return Counter(line.split()[1] for line in hook_log.read_text().splitlines())

    try:
        poll(lambda: set(delivered()) == acknowledged, timeout=60)
    except TimeoutError:
        missing = acknowledged - set(delivered())
        log = gateway.log.read_text(errors="replace")[-3000:]
        raise AssertionError(f"not delivered: {sorted(missing)}\n{log}") from None
    calls = delivered()
    # At least once for every acknowledged payment; a crash between a hook's return and its
    # delivered marker may repeat one delivery (hooks are idempotent on paymentRequestId).
    assert sum(calls.values()) - len(calls) <= 1, calls
    poll(lambda: gateway.metric("doku_gateway_redis_up") == 1.0, timeout=30)
