"""The Redis Streams payment journal against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.config import CacheSettings, PaymentSettings
from gateway.payments.journal.base import JournalEntry
from gateway.payments.journal.file import FileJournal
from gateway.payments.journal.redis import RedisJournal

from ..support import RedisServer

pytestmark = pytest.mark.anyio


def entry(prid: str, code: str = "8889900001234") -> JournalEntry:
    return JournalEntry(prid, code, "88899", {"paymentRequestId": prid}, time.time())


def journal(redis_server: RedisServer, **payment: object) -> RedisJournal:
    return RedisJournal.from_settings(
        CacheSettings(url=redis_server.url), PaymentSettings(journal="redis", **payment)
    )  # type: ignore[arg-type]


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


async def test_file_journal_survives_a_torn_last_line(tmp_path: object) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    first = FileJournal(directory)
    await first.append(entry("PR-1"))
    with (directory / "payments.jsonl").open("ab") as handle:
        handle.write(b'{"prid":"PR-2","co')  # a crash mid-write: never acknowledged
    reopened = FileJournal(directory)
    lease = await reopened.read(0, timeout=0.01)
    assert lease is not None and [e.payment_request_id for e in lease.entries] == ["PR-1"]
    stored, new = await reopened.append(entry("PR-1"))
    assert not new and stored.payment_request_id == "PR-1"


async def test_file_journal_follows_lines_of_another_process(tmp_path: object) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    gateway_side = FileJournal(directory)
    cli_side = FileJournal(directory)  # e.g. `doku-gateway reconcile` in its own process
    await cli_side.append(entry("PR-CLI", "8889900005555"))
    assert await gateway_side.has_payment("8889900005555")
    stored, new = await gateway_side.append(entry("PR-CLI", "8889900005555"))
    assert not new and stored.payment_request_id == "PR-CLI"
    await gateway_side.append(entry("PR-GW"))
    lease = await gateway_side.read(0, timeout=0.01)
    assert lease is not None
    assert [e.payment_request_id for e in lease.entries] == ["PR-CLI", "PR-GW"]
    assert len((directory / "payments.jsonl").read_bytes().splitlines()) == 2
