"""A delivery's claim (lock, unless delivered) and record (mark delivered, then unlock), on the
file journal and on the Redis journal against a real redis-server; and what a delivery costs
Redis through a real Deliverer, counted by Redis's own command statistics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway import Bill, BillStatus, Inquiry, Payment
from gateway._redis.scripts import script, script_sha
from gateway.config import CacheSettings, PaymentSettings
from gateway.doku.simulator import payment_body
from gateway.metrics import Metrics
from gateway.payments.delivery import Deliverer
from gateway.payments.journal.base import Journal, JournalEntry
from gateway.payments.journal.file import FileJournal
from gateway.payments.journal.redis import RedisJournal
from gateway.resolvers.dispatch import ResolverSet

from ..support import RedisServer

pytestmark = pytest.mark.anyio

CODE = "8889900001234"
FAST = PaymentSettings(backoff_initial=0.01, backoff_max=0.05, max_attempts=3)
PREFIX = "doku-gateway:"  # CacheSettings' default


def entry(prid: str) -> JournalEntry:
    document = payment_body(CODE, "   88899", "1.00", payment_request_id=prid)
    raw = json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return JournalEntry(prid, CODE, "88899", document, time.time(), raw=raw)


def lock_key(prid: str) -> bytes:
    return f"{PREFIX}v1:{{pay}}:lock:{prid}".encode()


def done_key(prid: str) -> bytes:
    return f"{PREFIX}v1:{{pay}}:done:{prid}".encode()


def redis_journal(server: RedisServer) -> RedisJournal:
    return RedisJournal.from_settings(
        CacheSettings(url=server.url), PaymentSettings(journal="redis", shards=1, lease_ttl=5.0)
    )


async def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll ``check`` (sync or async) until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@dataclass
class Pair:
    """A journal, and the one another delivery path would claim through: another instance on
    the same Redis, or (the file journal's locks live in its process) the same instance."""

    journal: Journal
    other: Journal
    probe: aioredis.Redis | None


@pytest.fixture
async def probe(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture(params=["file", "redis"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    if request.param == "file":
        journal = FileJournal(tmp_path)
        try:
            yield Pair(journal, journal, None)
        finally:
            await journal.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    # (An async fixture cannot be requested from here: its own probe.)
    probe = aioredis.Redis.from_url(server.url)
    first, second = redis_journal(server), redis_journal(server)
    try:
        yield Pair(first, second, probe)
    finally:
        await first.close()
        await second.close()
        await probe.aclose()


async def test_claim_then_record_then_nothing_left_to_claim(pair: Pair) -> None:
    journal, other, probe = pair.journal, pair.other, pair.probe
    await journal.append(entry("PR-C"))
    assert await journal.claim_delivery("PR-C", 30) is True
    if probe is not None:
        assert await probe.exists(lock_key("PR-C")) == 1
        assert await probe.pttl(lock_key("PR-C")) > 25_000  # the ttl given, in ms
    # Held: the other path is told so (False), and takes nothing.
    assert await other.claim_delivery("PR-C", 30) is False
    assert await journal.claim_delivery("PR-C", 30) is False
    assert not await other.lock("PR-C", 30)
    assert not await journal.is_delivered("PR-C")

    await journal.record_delivery("PR-C")
    assert await journal.is_delivered("PR-C")
    assert await other.is_delivered("PR-C")
    if probe is not None:
        assert await probe.exists(lock_key("PR-C")) == 0
    assert await other.lock("PR-C", 30)  # the lock is free
    await other.unlock("PR-C")

    # Delivered: None, from either path, and no lock taken by it.
    assert await journal.claim_delivery("PR-C", 30) is None
    assert await other.claim_delivery("PR-C", 30) is None
    if probe is not None:
        assert await probe.exists(lock_key("PR-C")) == 0
    assert await journal.lock("PR-C", 30)
    await journal.unlock("PR-C")
    assert await other.lock("PR-C", 30)
    await other.unlock("PR-C")


async def test_a_claim_is_per_payment(pair: Pair) -> None:
    assert await pair.journal.claim_delivery("PR-A", 30) is True
    assert await pair.other.claim_delivery("PR-B", 30) is True
    await pair.journal.record_delivery("PR-A")
    assert await pair.journal.is_delivered("PR-A")
    assert not await pair.journal.is_delivered("PR-B")
    assert await pair.journal.claim_delivery("PR-B", 30) is False  # still held by the other
    await pair.other.record_delivery("PR-B")
    assert await pair.journal.claim_delivery("PR-B", 30) is None


async def test_the_claims_lock_expires_with_its_ttl(redis_server: RedisServer) -> None:
    first, second = redis_journal(redis_server), redis_journal(redis_server)
    try:
        assert await first.claim_delivery("PR-T", 0.05) is True
        assert await second.claim_delivery("PR-T", 30) is False

        async def taken() -> bool:
            return await second.claim_delivery("PR-T", 30) is True

        await wait_for(taken)  # the 50 ms lock ran out: the other path takes it
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("lost", ["expired", "deleted"])
async def test_a_record_after_the_lock_was_lost_leaves_the_new_holders_lock(
    redis_server: RedisServer, probe: aioredis.Redis, lost: str
) -> None:
    first, second = redis_journal(redis_server), redis_journal(redis_server)
    try:
        if lost == "expired":
            assert await first.claim_delivery("PR-L", 0.05) is True

            async def expired() -> bool:
                return await probe.exists(lock_key("PR-L")) == 0

            await wait_for(expired)
        else:
            assert await first.claim_delivery("PR-L", 30) is True
            assert await probe.delete(lock_key("PR-L")) == 1
        assert await second.claim_delivery("PR-L", 30) is True
        held = await probe.get(lock_key("PR-L"))
        assert held is not None

        await first.record_delivery("PR-L")  # its hook returned after it lost the lock
        assert await second.is_delivered("PR-L")
        assert await probe.get(lock_key("PR-L")) == held  # the new holder's lock stays
        await first.unlock("PR-L")  # what the deliverer's finally does: nothing left to do
        assert await probe.get(lock_key("PR-L")) == held

        await second.record_delivery("PR-L")
        assert await probe.exists(lock_key("PR-L")) == 0
        assert await first.claim_delivery("PR-L", 30) is None
    finally:
        await first.close()
        await second.close()


async def test_claim_and_record_reload_scripts_redis_forgot(
    redis_server: RedisServer, probe: aioredis.Redis
) -> None:
    journal = redis_journal(redis_server)
    try:
        assert await journal.claim_delivery("PR-S1", 30) is True  # loads the claim script
        await journal.record_delivery("PR-S1")  # loads the record script
        claim, record = script_sha("claim_delivery"), script_sha("record_delivery")
        assert await probe.script_exists(claim, record) == [True, True]

        await probe.script_flush()  # what a restart without persistence looks like
        assert await probe.script_exists(claim, record) == [False, False]
        assert await journal.claim_delivery("PR-S2", 30) is True
        assert await probe.exists(lock_key("PR-S2")) == 1

        await probe.script_flush()
        await journal.record_delivery("PR-S2")
        assert await probe.exists(done_key("PR-S2")) == 1
        assert await probe.exists(lock_key("PR-S2")) == 0
        assert await probe.script_exists(claim, record) == [False, True]  # reloaded: record

        await probe.script_flush()
        assert await journal.claim_delivery("PR-S2", 30) is None
        assert await journal.claim_delivery("PR-S1", 30) is None
    finally:
        await journal.close()


# -- what one delivery costs Redis ----------------------------------------------------------------


class Hook:
    """A resolver whose on_payment records the paymentRequestIds it is called with."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
        return Bill(name="B", amount=Decimal("1.00"))

    async def on_payment(self, payment: Payment) -> None:
        self.calls.append(payment.payment_request_id)


# Commands the probe itself sends, and the handshake of a new connection: not a delivery's.
_NOT_COUNTED = ("cmdstat_info", "cmdstat_config|", "cmdstat_client|", "cmdstat_script|")


async def command_calls(probe: aioredis.Redis) -> dict[str, int]:
    stats = await probe.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(stat["calls"])
        for name, stat in stats.items()
        if not name.startswith(_NOT_COUNTED)
    }


async def ready(journal: RedisJournal, probe: aioredis.Redis, prid: str) -> None:
    """The entry journaled and the scripts known to Redis (so that no EVALSHA of the delivery
    is a NOSCRIPT retry), then Redis's command statistics zeroed."""
    await journal.append(entry(prid))
    for sha, name in (
        (script_sha("claim_delivery"), "claim_delivery"),
        (script_sha("record_delivery"), "record_delivery"),
    ):
        assert await probe.script_load(script(name)) == sha
    await probe.config_resetstat()
    assert await command_calls(probe) == {}


async def test_a_delivery_is_one_claim_script_and_one_record_script(
    redis_server: RedisServer, probe: aioredis.Redis
) -> None:
    journal = redis_journal(redis_server)
    hook = Hook()
    deliverer = Deliverer(journal, ResolverSet.single(hook, "hook"), FAST, Metrics())
    try:
        await ready(journal, probe, "PR-N")
        assert await deliverer.deliver_now(entry("PR-N"))
        assert hook.calls == ["PR-N"]
        # Two EVALSHAs; the EXISTS, SET, GET and DEL are the scripts' own (Redis counts a
        # script's calls too): no EXISTS (is_delivered) nor SET NX (lock) of their own.
        assert await command_calls(probe) == {
            "evalsha": 2,
            "exists": 1,  # claim: delivered already?
            "set": 2,  # claim: the lock; record: the marker
            "get": 1,  # record: still ours?
            "del": 1,  # record: give it up
        }
        assert await probe.exists(done_key("PR-N")) == 1
        assert await probe.exists(lock_key("PR-N")) == 0

        # Delivered: a second attempt is the claim script alone, and calls no hook.
        await probe.config_resetstat()
        assert await deliverer.deliver_now(entry("PR-N"))
        assert hook.calls == ["PR-N"]
        assert await command_calls(probe) == {"evalsha": 1, "exists": 1}
    finally:
        await journal.close()


async def test_a_background_delivery_sends_no_exists_of_its_own(
    redis_server: RedisServer, probe: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = redis_journal(redis_server)
    batch = journal._batch
    assert batch is not None
    sent: list[tuple[Any, ...]] = []
    submit = batch.submit

    def recording(*command: Any) -> asyncio.Future[Any]:
        sent.append(command[:2] if command[0] == "EVALSHA" else command[:1])
        return submit(*command)

    monkeypatch.setattr(batch, "submit", recording)
    hook = Hook()
    deliverer = Deliverer(journal, ResolverSet.single(hook, "hook"), FAST, Metrics())
    try:
        await ready(journal, probe, "PR-BG")
        sent.clear()
        await deliverer.start()
        await wait_for(lambda: ("XACK",) in sent)
        await deliverer.stop()
        await batch.flush()
        assert hook.calls == ["PR-BG"]
        # Through the journal's pipeline: the claim, the record, the acknowledgement.
        assert sent == [
            ("EVALSHA", script_sha("claim_delivery")),
            ("EVALSHA", script_sha("record_delivery")),
            ("XACK",),
        ]
        calls = await command_calls(probe)
        assert calls["exists"] == 1  # the claim script's; no is_delivered of its own
        assert calls["xack"] == 1
        assert await probe.exists(done_key("PR-BG")) == 1
        assert await probe.exists(lock_key("PR-BG")) == 0
    finally:
        await deliverer.stop()
        await journal.close()
