"""The payment journal interface, asserted against every backend (files, and Redis Streams on a
real redis-server). Backend-specific behaviour lives in the other journal suites."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.payments.journal import create_journal
from gateway.payments.journal.base import Journal, JournalEntry

from ..support import Keys, RedisServer, make_settings

pytestmark = pytest.mark.anyio

CODE = "8889900001234"


def entry(prid: str, code: str = CODE, at: float | None = None) -> JournalEntry:
    body = {"paymentRequestId": prid, "virtualAccountNo": "   88899" + code[5:]}
    return JournalEntry(prid, code, "88899", body, time.time() if at is None else at)


@pytest.fixture(params=["file", "redis"])
async def journal(
    request: pytest.FixtureRequest, tmp_path: Path, keys: Keys
) -> AsyncIterator[Journal]:
    if request.param == "file":
        settings = make_settings(keys, payment={"journal": "file", "journal_dir": str(tmp_path)})
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        settings = make_settings(
            keys,
            cache={"url": server.url},
            payment={"journal": "redis", "shards": 1, "lease_ttl": 5.0},
        )
    backend = create_journal(settings)
    assert isinstance(backend, Journal)
    try:
        yield backend
    finally:
        await backend.close()


async def read_ids(journal: Journal) -> list[str]:
    assert await journal.keepalive(0)
    lease = await journal.read(0, timeout=0.2)
    assert lease is not None
    return [e.payment_request_id for e in lease.entries]


async def test_append_is_idempotent_on_payment_request_id(journal: Journal) -> None:
    results = await asyncio.gather(*(journal.append(entry("PR-1")) for _ in range(8)))
    assert sum(new for _, new in results) == 1
    assert {stored.payment_request_id for stored, _ in results} == {"PR-1"}
    assert await journal.has_payment(CODE)
    assert not await journal.has_payment("8889900009999")


async def test_entries_are_read_in_order_until_done(journal: Journal) -> None:
    for prid in ("A", "B", "C"):
        await journal.append(entry(prid))
    assert await read_ids(journal) == ["A", "B", "C"]
    lease = await journal.read(0, timeout=0.2)
    assert lease is not None
    await journal.done(0, lease.entries[0])
    assert await read_ids(journal) == ["B", "C"]


async def test_delivered_marker(journal: Journal) -> None:
    await journal.append(entry("D-1"))
    assert not await journal.is_delivered("D-1")
    await journal.mark_delivered("D-1")
    await journal.mark_delivered("D-1")  # idempotent
    assert await journal.is_delivered("D-1")


async def test_hook_lock_is_exclusive(journal: Journal) -> None:
    assert await journal.lock("L-1", 5.0)
    assert not await journal.lock("L-1", 5.0)
    await journal.unlock("L-1")
    assert await journal.lock("L-1", 5.0)
    await journal.unlock("L-1")


async def test_dead_letter_and_replay(journal: Journal) -> None:
    stored, _ = await journal.append(entry("X-1"))
    await journal.dead_letter(stored, "hook raised RuntimeError", 5)
    letters = await journal.dead_letters()
    assert [(d.entry.payment_request_id, d.error, d.attempts) for d in letters] == [
        ("X-1", "hook raised RuntimeError", 5)
    ]
    assert not await journal.replay("no-such-id")
    assert await journal.replay(letters[0].dead_id)
    assert await journal.dead_letters() == []


async def test_backlog_counts_what_is_not_handled_yet(journal: Journal) -> None:
    assert await journal.backlog() == (0, None)
    first, _ = await journal.append(entry("B-1"))
    await journal.append(entry("B-2"))
    count, oldest = await journal.backlog()
    assert count == 2 and oldest == pytest.approx(first.received_at)
    lease = await journal.read(0, timeout=0.2)
    assert lease is not None
    await journal.done(0, lease.entries[0])
    count, oldest = await journal.backlog()
    assert count == 1 and oldest == pytest.approx(lease.entries[1].received_at)
    await journal.done(0, lease.entries[1])
    assert await journal.backlog() == (0, None)


async def test_entries_filter_by_time_and_va(journal: Journal) -> None:
    other = "8889900005678"
    now = time.time()
    for n in range(5):
        await journal.append(entry(f"E-{n}", other if n % 2 else CODE, now + n))
    assert [e.payment_request_id for e in await journal.entries()] == [
        "E-0",
        "E-1",
        "E-2",
        "E-3",
        "E-4",
    ]
    assert [e.payment_request_id for e in await journal.entries(limit=2)] == ["E-0", "E-1"]
    assert [e.payment_request_id for e in await journal.entries(va="   88899" + other[5:])] == [
        "E-1",
        "E-3",
    ]
    since = now + 3
    assert [e.payment_request_id for e in await journal.entries(since=since)] == ["E-3", "E-4"]
    assert await journal.entries(va="8889900000000") == []


async def test_find_by_payment_request_id(journal: Journal) -> None:
    stored, _ = await journal.append(entry("F-1"))
    found = await journal.find("F-1")
    assert found is not None
    assert (found.payment_request_id, found.payment_code, found.body) == (
        "F-1",
        CODE,
        stored.body,
    )
    assert await journal.find("F-404") is None
