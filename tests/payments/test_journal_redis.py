"""The Redis Streams payment journal against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.config import CacheSettings, PaymentSettings
from gateway.payments.journal.base import JournalEntry
from gateway.payments.journal.redis import RedisJournal

from ..support import RedisServer

pytestmark = pytest.mark.anyio


def entry(prid: str, code: str = "8889900001234") -> JournalEntry:
    return JournalEntry(prid, code, "88899", {"paymentRequestId": prid}, time.time())


def journal(redis_server: RedisServer, **payment: Any) -> RedisJournal:
    return RedisJournal.from_settings(
        CacheSettings(url=redis_server.url), PaymentSettings(journal="redis", **payment)
    )


@pytest.fixture
async def redis_journal(redis_server: RedisServer) -> AsyncIterator[RedisJournal]:
    backend = journal(redis_server, lease_ttl=5.0)
    yield backend
    await backend.close()


async def test_append_is_idempotent_under_concurrency(redis_journal: RedisJournal) -> None:
    results = await asyncio.gather(*(redis_journal.append(entry("PR-1")) for _ in range(10)))
    assert sum(new for _, new in results) == 1
    assert len({stored.entry_id for stored, _ in results}) == 1
    assert {stored.body["paymentRequestId"] for stored, _ in results} == {"PR-1"}


async def test_read_in_order_and_ack(redis_journal: RedisJournal) -> None:
    shard = redis_journal.shard_of("8889900001234")
    for prid in ("A", "B", "C"):
        await redis_journal.append(entry(prid))
    lease = await redis_journal.read(shard, timeout=0.1)
    assert lease is not None
    assert [e.payment_request_id for e in lease.entries] == ["A", "B", "C"]
    await redis_journal.done(shard, lease.entries[0])
    # Not acknowledged: B and C are read again (what a restarted owner would see first).
    again = await redis_journal.read(shard, timeout=0.1)
    assert again is not None and [e.payment_request_id for e in again.entries] == ["B", "C"]


async def test_one_owner_per_shard(redis_server: RedisServer, redis_journal: RedisJournal) -> None:
    other = journal(redis_server, lease_ttl=5.0)
    try:
        assert await redis_journal.read(0, timeout=0.01) is not None
        assert await other.read(0, timeout=0.01) is None
    finally:
        await other.close()


async def test_dead_letters_and_replay(redis_journal: RedisJournal) -> None:
    first, _ = await redis_journal.append(entry("PR-D"))
    await redis_journal.dead_letter(first, "ConnectionError: down", 10)
    letters = await redis_journal.dead_letters()
    assert [(d.entry.payment_request_id, d.attempts, d.error) for d in letters] == [
        ("PR-D", 10, "ConnectionError: down")
    ]
    shard = redis_journal.shard_of(first.payment_code)
    lease = await redis_journal.read(shard, timeout=0.1)
    assert lease is not None
    for item in lease.entries:
        await redis_journal.done(shard, item)
    assert await redis_journal.replay(letters[0].dead_id)
    assert not await redis_journal.replay(letters[0].dead_id)
    assert await redis_journal.dead_letters() == []
    lease = await redis_journal.read(shard, timeout=0.5)
    assert lease is not None and [e.payment_request_id for e in lease.entries] == ["PR-D"]


async def test_delivery_marker_and_lock(
    redis_server: RedisServer, redis_journal: RedisJournal
) -> None:
    other = journal(redis_server)
    try:
        assert await redis_journal.lock("PR-L", 5)
        assert not await other.lock("PR-L", 5)
        await redis_journal.unlock("PR-L")
        assert await other.lock("PR-L", 5)
        await other.unlock("PR-L")
        assert not await other.is_delivered("PR-L")
        await redis_journal.mark_delivered("PR-L")
        assert await other.is_delivered("PR-L")
    finally:
        await other.close()


async def test_missing_replicas_refuse_the_append(redis_server: RedisServer) -> None:
    backend = journal(redis_server, wait_replicas=1)
    try:
        with pytest.raises(OSError, match="replica"):
            await backend.append(entry("PR-W"))
    finally:
        await backend.close()


async def test_the_wait_for_replicas_travels_with_its_append(redis_server: RedisServer) -> None:
    # WAIT counts its own connection's writes: sent apart (after a reconnect) it would count
    # nothing and pass. Queued together, the append and its WAIT are one pipeline.
    backend = journal(redis_server, wait_replicas=1)
    try:
        with pytest.raises(OSError, match="replica"):
            await backend.append(entry("PR-W1"))  # loads the script, then WAIT times out
        batch = backend._batch
        assert batch is not None
        before = batch.round_trips
        with pytest.raises(OSError, match="0 replica"):
            await backend.append(entry("PR-W2"))
        assert batch.round_trips - before == 1
    finally:
        await backend.close()


async def test_an_append_is_one_script_call_before_the_ack(
    redis_server: RedisServer, redis_journal: RedisJournal
) -> None:
    import redis.asyncio as aioredis

    await redis_journal.append(entry("PR-WARM"))  # loads the script
    probe = aioredis.Redis.from_url(redis_server.url)
    try:
        await probe.config_resetstat()
        results = await asyncio.gather(*(redis_journal.append(entry(f"PR-{n}")) for n in range(20)))
        stats = await probe.info("commandstats")
    finally:
        await probe.aclose()
    assert all(new for _, new in results)
    calls = {name.removeprefix("cmdstat_"): row["calls"] for name, row in stats.items()}
    # One EVALSHA per notification; its XADD and SETs run inside it, atomically.
    assert calls.pop("evalsha") == 20
    assert calls.pop("xadd") == 20 and calls.pop("set") == 40
    assert calls.pop("get") == 20  # the idempotency lookup, inside the script too
    for connection_setup in ("config|resetstat", "hello", "client|setinfo", "select", "ping"):
        calls.pop(connection_setup, None)
    assert calls == {}, calls


@pytest.mark.parametrize("prid", ["\ud800", "A\nB", "\udc80x", "\ud800\udfff"])
async def test_any_json_string_is_a_key(redis_journal: RedisJournal, prid: str) -> None:
    stored, new = await redis_journal.append(entry(prid))
    assert new
    again, new = await redis_journal.append(entry(prid))
    assert not new and again.entry_id == stored.entry_id
    shard = redis_journal.shard_of(stored.payment_code)
    lease = await redis_journal.read(shard, timeout=0.1)
    assert lease is not None and [e.payment_request_id for e in lease.entries] == [prid]
    assert await redis_journal.lock(prid, 5)
    await redis_journal.mark_delivered(prid)
    await redis_journal.unlock(prid)
    assert await redis_journal.is_delivered(prid)
    lookalike = prid.encode("utf-8", "replace").decode()  # what a lossy key encoding makes
    assert lookalike == prid or not await redis_journal.is_delivered(lookalike)
    found = await redis_journal.find(prid)
    assert found is not None and found.payment_request_id == prid
    await redis_journal.dead_letter(stored, f"RuntimeError: {prid}", 3)
    [letter] = await redis_journal.dead_letters()
    assert letter.entry.payment_request_id == prid


async def test_an_unreadable_stream_entry_is_surfaced_and_does_not_block(
    redis_server: RedisServer, redis_journal: RedisJournal, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as aioredis

    shard = redis_journal.shard_of("8889900001234")
    await redis_journal.append(entry("PR-1"))
    probe = aioredis.Redis.from_url(redis_server.url)
    try:
        await probe.xadd(f"doku-gateway:v1:{{pay}}:s:{shard}", {"e": b'{"prid":"PR-X","co'})
    finally:
        await probe.aclose()
    await redis_journal.append(entry("PR-2"))
    lease = await redis_journal.read(shard, timeout=0.1)
    assert lease is not None
    assert [e.payment_request_id for e in lease.entries] == ["PR-1", "PR-2"]
    assert redis_journal.unreadable == 1
    assert "unreadable entry" in caplog.text
    for item in lease.entries:
        await redis_journal.done(shard, item)
    # Acknowledged with the others: it is not read first again and again.
    again = await redis_journal.read(shard, timeout=0.1)
    assert again is not None and again.entries == []
    assert redis_journal.unreadable == 1


async def handle_all(journal: RedisJournal, shard: int, skip: str = "") -> None:
    """Read and acknowledge everything, as the deliverer does (``skip`` stays unacknowledged)."""
    while True:
        lease = await journal.read(shard, timeout=0.01)
        assert lease is not None
        todo = [e for e in lease.entries if e.payment_request_id != skip]
        if not todo:
            return
        for item in todo:
            await journal.done(shard, item)


async def test_handled_entries_are_trimmed_from_the_stream(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    backend = journal(redis_server, shards=1, journal_keep_delivered=10)
    probe = aioredis.Redis.from_url(redis_server.url)
    try:
        for n in range(600):
            await backend.append(entry(f"PR-{n}"))
        await handle_all(backend, 0)
        # Trimmed every 256 handled entries down to the newest 10.
        assert await probe.xlen("doku-gateway:v1:{pay}:s:0") <= 10 + 256
        assert await backend.backlog() == (0, None)
        stored, new = await backend.append(entry("PR-0"))  # trimmed, still known
        assert not new and stored.payment_request_id == "PR-0"
    finally:
        await probe.aclose()
        await backend.close()


async def handle_all_but_pr5(backend: RedisJournal, probe: Any, stream: str) -> None:
    """Journal PR-0..PR-599, read them all (the rest through ``probe``, past one lease), and
    mark each handled but PR-5."""
    for n in range(600):
        await backend.append(entry(f"PR-{n}"))
    first = await backend.read(0, timeout=0.01)
    assert first is not None
    rest: Any = await probe.xreadgroup("deliverer", "deliverer", {stream: ">"}, count=1000)
    read = [*first.entries, *(JournalEntry.decode(f[b"e"], i.decode()) for i, f in rest[0][1])]
    assert len(read) == 600
    for item in read:
        if item.payment_request_id != "PR-5":
            await backend.done(0, item)


async def test_an_unacknowledged_entry_is_never_trimmed(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    backend = journal(redis_server, shards=1, journal_keep_delivered=0)
    probe = aioredis.Redis.from_url(redis_server.url)
    stream = "doku-gateway:v1:{pay}:s:0"
    try:
        await handle_all_but_pr5(backend, probe, stream)  # PR-5: read, never acknowledged
        # Trimmed twice, each time only what came before PR-5.
        assert await probe.xlen(stream) == 595
        lease = await backend.read(0, timeout=0.01)
        assert lease is not None and [e.payment_request_id for e in lease.entries] == ["PR-5"]
    finally:
        await probe.aclose()
        await backend.close()


async def test_a_pending_entry_is_never_trimmed_when_a_history_is_kept(
    redis_server: RedisServer,
) -> None:
    """The cut is found from the ids handled here (no entry bodies read), bounded by the oldest
    entry still being delivered; once that one is handled too, the history is cut to size."""
    import redis.asyncio as aioredis

    backend = journal(redis_server, shards=1, journal_keep_delivered=10)
    probe = aioredis.Redis.from_url(redis_server.url)
    stream = "doku-gateway:v1:{pay}:s:0"
    try:
        await handle_all_but_pr5(backend, probe, stream)  # PR-5: read, still being delivered
        # Two trims (at 256 and 512 handled), each only up to PR-5.
        assert await probe.xlen(stream) == 595
        lease = await backend.read(0, timeout=0.01)
        assert lease is not None and [e.payment_request_id for e in lease.entries] == ["PR-5"]
        await backend.done(0, lease.entries[0])
        for n in range(600, 1000):
            await backend.append(entry(f"PR-{n}"))
        await handle_all(backend, 0)
        length = await probe.xlen(stream)
        assert length <= 10 + 256
        assert await backend.backlog() == (0, None)
    finally:
        await probe.aclose()
        await backend.close()
