"""Round trips to Redis on the inquiry path, counted (not timed) against a real redis-server.

Real DOKU traffic inquires each VA once: the cache miss is the hot path. Its replay claim, cache
lookup and single-flight lock travel as one script; the answer, the unlock, the replay record
and the inquiry ledger travel after the answer is sent, and the answer waits for none of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from gateway.doku.simulator import DokuSimulator, inquiry_body, payment_body
from gateway.metrics import Metrics
from gateway.payments.journal.redis import RedisJournal
from gateway.state.redis import RedisState
from gateway.web.app import create_app

from ...support import Keys, RedisServer, make_settings, running_server

pytestmark = pytest.mark.anyio

PARTNER = "   88899"
Message = MutableMapping[str, Any]


@dataclass
class Counter:
    """Round trips of the state backend: pipelines of its batch, plus commands sent alone."""

    state: RedisState
    journal: RedisJournal
    alone: int = 0
    at_answer: list[int] = field(default_factory=list)
    #: The state's own pipelines at each answer (the journal's carry background deliveries too).
    state_at_answer: list[int] = field(default_factory=list)

    def total(self) -> int:
        """Round trips of the state and the journal's appends (the deliverer's reads, in the
        background on the journal's own connections, are not the request's)."""
        batch, appends = self.state._batch, self.journal._batch
        assert batch is not None and appends is not None
        return batch.round_trips + appends.round_trips + self.alone

    def queued(self) -> bool:
        batch = self.state._batch
        assert batch is not None
        return bool(batch._pending or batch._in_flight or batch._reloads)


@dataclass
class Gateway:
    http: httpx.AsyncClient
    counter: Counter
    state: RedisState
    token: str
    simulator: DokuSimulator
    probe: aioredis.Redis

    async def pay(self, code: str, payment_request_id: str) -> httpx.Response:
        document = payment_body(code, PARTNER, "25000.00", payment_request_id=payment_request_id)
        request = self.simulator.payment_request(self.token, document)
        return await self.simulator.send(self.http, request)

    async def inquire(self, code: str) -> httpx.Response:
        request = self.simulator.inquiry_request(self.token, inquiry_body(code, PARTNER))
        return await self.simulator.send(self.http, request)

    async def settled(self, code: str) -> None:
        """Wait (polling, with a deadline) until the fired writes of ``code`` reached Redis:
        its resolve lock is gone and nothing is queued."""
        lock = f"doku-gateway:v1:{{{code}}}:l"
        deadline = asyncio.get_running_loop().time() + 10
        while await self.probe.exists(lock) or self.counter.queued():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)


@pytest.fixture
async def gateway(keys: Keys, redis_server: RedisServer) -> AsyncIterator[Gateway]:
    settings = make_settings(keys, cache={"url": redis_server.url})
    state = RedisState.from_settings(settings.cache, Metrics())
    journal = RedisJournal.from_settings(settings.cache, settings.payment)
    counter = Counter(state, journal)
    client = state._redis
    execute = client.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        counter.alone += 1
        return await execute(*args, **options)

    client.execute_command = counted
    app = create_app(settings, state=state, journal=journal)

    async def observed(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                counter.at_answer.append(counter.total())
                assert state._batch is not None
                counter.state_at_answer.append(state._batch.round_trips)
            await send(message)

        await app(scope, receive, watch)

    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    probe = aioredis.Redis.from_url(redis_server.url)
    with running_server(observed) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            token = await simulator.get_token(http)
            gateway = Gateway(http, counter, state, token, simulator, probe)
            # The first inquiry loads the scripts into Redis (once per Redis lifetime).
            assert (await gateway.inquire("8889900000001")).status_code == 200
            await gateway.settled("8889900000001")
            yield gateway
    await probe.aclose()


async def test_a_cache_miss_answers_after_one_round_trip(gateway: Gateway) -> None:
    counter = gateway.counter
    before = counter.total()
    response = await gateway.inquire("8889900004242")
    assert response.status_code == 200
    assert response.json()["responseCode"] == "2002400"
    # Claim + cache lookup + resolve lock: one script, the only round trip the answer waited for.
    assert counter.at_answer[-1] - before == 1
    await gateway.settled("8889900004242")
    # Then the answer, the unlock and the replay record rode in one more pipeline.
    assert counter.total() - before == 2
    assert await gateway.probe.exists(answer_key("8889900004242"))


async def test_a_cache_hit_is_one_round_trip(gateway: Gateway) -> None:
    counter = gateway.counter
    assert (await gateway.inquire("8889900007777")).status_code == 200
    await gateway.settled("8889900007777")
    before = counter.total()
    assert (await gateway.inquire("8889900007777")).status_code == 200
    assert counter.at_answer[-1] - before == 1
    assert counter.total() - before == 1


async def test_a_miss_for_an_unknown_bill_releases_the_lock_with_its_answer(
    gateway: Gateway,
) -> None:
    counter = gateway.counter
    before = counter.total()
    response = await gateway.inquire("8889911900001")  # the demo's "not found" prefix
    assert response.json()["responseCode"] == "4042412"
    assert counter.at_answer[-1] - before == 1
    await gateway.settled("8889911900001")
    assert counter.total() - before == 2


def answer_key(code: str) -> str:
    return f"doku-gateway:v1:{{{code}}}:a"


async def test_a_payment_is_acknowledged_after_its_claim_and_one_journal_write(
    gateway: Gateway,
) -> None:
    """Before the ack: the replay claim (one pipeline of the state) and one durable journal
    write (the append script). The delivery that follows shares the journal's pipelines, so
    the journal side is counted by what it sends, not by round trips."""
    # A first payment loads the journal's and the cache's scripts (once per Redis lifetime).
    assert (await gateway.pay("8889900005554", "PAY-RT-0")).status_code == 200
    assert (await gateway.inquire("8889900005555")).status_code == 200
    await gateway.settled("8889900005555")
    journal, claims = gateway.counter.journal, gateway.state._batch
    assert journal._batch is not None and claims is not None
    appends: list[int] = []
    submit = journal._batch.submit

    def counted_submit(*command: Any) -> Any:
        if command[:2] == ("EVALSHA", journal._append_sha):
            appends.append(claims.round_trips)
        return submit(*command)

    journal._batch.submit = counted_submit  # type: ignore[method-assign]
    claimed = claims.round_trips
    response = await gateway.pay("8889900005555", "PAY-RT-1")
    assert response.json()["responseCode"] == "2002500"
    # The claim's pipeline, then one journal write, then the ack: the cache's "already paid"
    # and the replay record are sent after it.
    assert appends == [claimed + 1]
    assert gateway.counter.state_at_answer[-1] == claimed + 1
    again = await gateway.inquire("8889900005555")
    assert again.json()["responseCode"] == "4042414"
