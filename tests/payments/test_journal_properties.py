"""Properties of the journal encoding: any JSON value in any field of a notification is either
refused by the notification's rules or goes through append, read, the delivery's parse, the
delivery record, compaction and restarts unchanged (file journal, and Redis Streams)."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.config import CacheSettings, PaymentSettings
from gateway.payments.delivery import payment_from_entry
from gateway.payments.journal.base import JournalEntry, encode_line, pack_text, unpack_text
from gateway.payments.journal.file import FileJournal, _done, _stub
from gateway.payments.journal.redis import RedisJournal
from gateway.snap.errors import SnapError
from gateway.snap.fields import parse_json
from gateway.snap.payment import parse_payment

from ..support import RedisServer
from .strategies import CODE, notifications

QUICK = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def accepted(document: dict[str, Any], raw: bytes) -> JournalEntry | None:
    """The entry the payment handler journals, or None when it answers a SNAP 4xx."""
    try:
        parsed = parse_json(raw)
        payment = parse_payment(parsed)
    except SnapError:
        event("refused")
        return None
    event("accepted")
    # What the gateway journals is what the bytes say (an escaped surrogate pair is one
    # character), not the Python value they were made from.
    return JournalEntry(
        payment.payment_request_id,
        payment.payment_code,
        payment.partner_service_id.strip(),
        parsed,
        time.time(),
        raw=raw,
    )


def same(found: JournalEntry | None, entry: JournalEntry) -> None:
    assert found is not None
    assert (found.payment_request_id, found.payment_code, found.partner_prefix) == (
        entry.payment_request_id,
        entry.payment_code,
        entry.partner_prefix,
    )
    assert found.body == entry.body and found.raw == entry.raw
    assert found.received_at == entry.received_at
    assert payment_from_entry(found) == payment_from_entry(entry)


def no_fsync(fd: int) -> None:
    """Durability is not what these properties are about; speed is welcome."""


@QUICK
@given(notification=notifications())
def test_any_value_round_trips_the_file_journal(notification: tuple[dict[str, Any], bytes]) -> None:
    entry = accepted(*notification)
    if entry is None:
        return
    prid = entry.payment_request_id

    async def run(directory: Path) -> None:
        def journal() -> FileJournal:
            return FileJournal(directory, keep_delivered=0, fsync=no_fsync)

        first = journal()
        stored, new = await first.append(entry)
        assert new
        lease = await first.read(0, timeout=0.01)
        assert lease is not None and len(lease.entries) == 1
        same(lease.entries[0], entry)
        await first.mark_delivered(prid)
        await first.done(0, stored)
        await first.close()
        restarted = journal()
        assert await restarted.is_delivered(prid)
        same(await restarted.find(prid), entry)
        assert (await restarted.append(entry))[1] is False
        # Enough other deliveries for a compaction: the entry goes, its id stays.
        for n in range(70):
            other = JournalEntry(f"filler-{n}", CODE, "88899", {}, time.time())
            await restarted.append(other)
            await restarted.mark_delivered(other.payment_request_id)
        await restarted.close()
        compacted = journal()
        assert await compacted.find(prid) is None
        assert await compacted.is_delivered(prid)
        assert (await compacted.append(entry))[1] is False
        assert await compacted.has_payment(entry.payment_code)
        lease = await compacted.read(0, timeout=0.01)
        assert lease is not None and not lease.entries

    with tempfile.TemporaryDirectory(prefix="journal-property-") as directory:
        asyncio.run(run(Path(directory)))


@QUICK
@given(notification=notifications())
def test_any_value_round_trips_the_redis_journal(
    redis_server: RedisServer, notification: tuple[dict[str, Any], bytes]
) -> None:
    entry = accepted(*notification)
    if entry is None:
        return
    prid = entry.payment_request_id
    cache = CacheSettings(url=redis_server.url, prefix=f"p{uuid.uuid4().hex}:")
    payment = PaymentSettings(journal="redis", shards=1)

    async def run() -> None:
        first = RedisJournal.from_settings(cache, payment)
        try:
            stored, new = await first.append(entry)
            assert new
            lease = await first.read(0, timeout=0.01)
            assert lease is not None and len(lease.entries) == 1
            same(lease.entries[0], entry)
            await first.mark_delivered(prid)
            await first.dead_letter(stored, "RuntimeError: boom", 1)
            await first.done(0, stored)
        finally:
            await first.close()
        restarted = RedisJournal.from_settings(cache, payment)
        try:
            assert await restarted.is_delivered(prid)
            same(await restarted.find(prid), entry)
            again, new = await restarted.append(entry)
            assert not new
            same(again, entry)
            [letter] = await restarted.dead_letters()
            same(letter.entry, entry)
        finally:
            await restarted.close()

    asyncio.run(run())


@given(
    prid=st.text(max_size=40),
    code=st.text(max_size=30),
    at=st.floats(min_value=0.0, max_value=1e10, allow_nan=False),
)
def test_stubs_and_delivery_records_read_back_as_the_general_encoder_writes_them(
    prid: str, code: str, at: float
) -> None:
    stub = {"gone": pack_text(prid), "code": pack_text(code), "at": at}
    assert json.loads(_stub(prid, at, code)) == json.loads(encode_line(stub))
    if at >= 1e9:  # a clock's time (orjson writes a tiny float in another notation)
        assert _stub(prid, at, code) == encode_line(stub) + b"\n"
    assert _done(prid) == encode_line({"done": pack_text(prid)}) + b"\n"
    assert unpack_text(json.loads(_done(prid))["done"]) == prid
