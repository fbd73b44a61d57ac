"""The inquiry ledger, both backends: the file next to the journal and a real redis-server."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway import Bill, Inquiry
from gateway.config import CacheSettings
from gateway.payments.ledger import create_ledger
from gateway.payments.ledger.base import InquiryLedger, LedgerEntry
from gateway.payments.ledger.file import FileLedger, _fold, _live_lines, _tombstone
from gateway.payments.ledger.redis import RedisLedger

from ..support import Keys, RedisServer, make_settings

pytestmark = pytest.mark.anyio

PARTNER = "   88899"
Opener = Callable[[], InquiryLedger]


def entry(customer: str, at: float, **changes: object) -> LedgerEntry:
    value = LedgerEntry(
        payment_code=f"88899{customer}",
        partner_service_id=PARTNER,
        customer_no=customer,
        virtual_account_no=PARTNER + customer,
        inquiry_request_id=f"INQ-{customer}",
        trx_id=f"INV-{customer}",
        answered_at=at,
    )
    return dataclasses.replace(value, **changes)  # type: ignore[arg-type]


def codes(entries: list[LedgerEntry]) -> list[str]:
    return [e.customer_no for e in entries]


@pytest.fixture(params=["file", "redis"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens the same ledger store again on each call, as another process or pod would."""
    opened: list[InquiryLedger] = []

    def open_file() -> InquiryLedger:
        return FileLedger(tmp_path)

    def open_redis() -> InquiryLedger:
        server: RedisServer = request.getfixturevalue("redis_server")
        return RedisLedger.from_settings(CacheSettings(url=server.url))

    factory = open_file if request.param == "file" else open_redis

    def open_tracked() -> InquiryLedger:
        ledger = factory()
        opened.append(ledger)
        return ledger

    yield open_tracked
    for ledger in opened:
        await ledger.close()


async def test_due_is_the_window_oldest_first(opener: Opener) -> None:
    ledger = opener()
    for customer, at in [("3", 300.0), ("1", 100.0), ("5", 500.0), ("2", 200.0), ("4", 400.0)]:
        await ledger.record(entry(customer, at))
    assert codes(await ledger.due(400.0, 200.0, 10)) == ["2", "3", "4"]  # bounds inclusive
    assert codes(await ledger.due(1000.0, 0.0, 2)) == ["1", "2"]
    assert await ledger.due(99.0, 0.0, 10) == []
    assert await ledger.due(1000.0, 0.0, 0) == []
    # Equal answer times come in payment-code order, on both backends.
    await ledger.record(entry("0", 300.0))
    assert codes(await ledger.due(300.0, 300.0, 10)) == ["0", "3"]


async def test_every_field_round_trips(opener: Opener) -> None:
    inquiry = Inquiry(
        partner_service_id=PARTNER,
        customer_no="7001",
        virtual_account_no=PARTNER + "7001",
        payment_code="888997001",
        inquiry_request_id="INQ-ü-7001",
        channel="VIRTUAL_ACCOUNT_BRI",
        body=MappingProxyType({}),
    )
    bill = Bill(name="Budi", amount=Decimal("25000.00"), trx_id="INV-7001")
    full = LedgerEntry.from_inquiry(inquiry, bill, 1_700_000_000.123456)
    assert full.channel == "VIRTUAL_ACCOUNT_BRI" and full.trx_id == "INV-7001"
    bare = entry("7002", 1_700_000_001.5, trx_id=None, checked_at=1_700_000_100.25)
    ledger = opener()
    await ledger.record(full)
    await ledger.record(bare)
    assert await opener().due(2e9, 0.0, 10) == [full, bare]


async def test_the_newest_inquiry_wins(opener: Opener) -> None:
    ledger = opener()
    await ledger.record(entry("1", 100.0))
    await ledger.record(entry("1", 200.0, inquiry_request_id="INQ-second"))
    [latest] = await ledger.due(1000.0, 0.0, 10)
    assert (latest.answered_at, latest.inquiry_request_id) == (200.0, "INQ-second")
    # The reconciler noting a check of the older inquiry must not undo the newer one...
    await ledger.record(entry("1", 100.0, checked_at=300.0))
    assert await ledger.due(1000.0, 0.0, 10) == [latest]
    # ...while noting a check of the current one replaces it.
    checked = dataclasses.replace(latest, checked_at=300.0)
    await ledger.record(checked)
    assert await opener().due(1000.0, 0.0, 10) == [checked]


async def test_settle_removes_and_a_new_inquiry_records_again(opener: Opener) -> None:
    ledger, other = opener(), opener()
    await ledger.record(entry("1", 100.0))
    await ledger.record(entry("2", 200.0))
    await other.settle("888991")
    await other.settle("888990404")  # unknown: nothing to do
    assert codes(await ledger.due(1000.0, 0.0, 10)) == ["2"]
    await ledger.record(entry("1", 300.0))
    assert codes(await other.due(1000.0, 0.0, 10)) == ["2", "1"]


# -- file backend -------------------------------------------------------------------------------


def lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().split(b"\n") if line.strip()]


async def test_file_one_line_per_record_and_a_tombstone_per_settle(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path)
    await ledger.record(entry("1", 100.0))
    await ledger.record(entry("2", 200.0))
    await ledger.record(entry("1", 300.0))
    await ledger.settle("888992")
    await ledger.close()
    written = lines(tmp_path / "inquiries.jsonl")
    assert len(written) == 4
    assert json.loads(written[3]) == {"code": "888992", "settled": True}
    assert LedgerEntry.decode(written[2]) == entry("1", 300.0)


async def test_file_compacts_itself_as_dead_lines_pile_up(tmp_path: Path) -> None:
    path = tmp_path / "inquiries.jsonl"
    ledger = FileLedger(tmp_path, compact_min_bytes=1)
    for n in range(100):
        await ledger.record(entry("1", float(n)))
    await ledger.close()  # waits for a compaction under way
    assert len(lines(path)) < 10  # 99 of 100 lines were dead: rewritten as they piled up
    assert await FileLedger(tmp_path).due(1000.0, 0.0, 10) == [entry("1", 99.0)]


async def test_file_due_compacts_what_another_process_wrote(tmp_path: Path) -> None:
    path = tmp_path / "inquiries.jsonl"
    gateway = FileLedger(tmp_path)  # default threshold: this one never compacts a small file
    for n in range(20):
        await gateway.record(entry(f"2{n:02d}", 200.0 + n))
    for n in range(15):
        await gateway.settle(f"888992{n:02d}")
    await gateway.close()
    assert len(lines(path)) == 35

    reconciler = FileLedger(tmp_path, compact_min_bytes=1)
    expected = [f"2{n:02d}" for n in range(15, 20)]
    assert codes(await reconciler.due(1000.0, 0.0, 100)) == expected
    await reconciler.close()
    assert len(lines(path)) == 5
    assert codes(await FileLedger(tmp_path).due(1000.0, 0.0, 100)) == expected


async def test_file_is_not_rewritten_while_mostly_live(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path, compact_min_bytes=1)
    await ledger.record(entry("0", 1.0))
    inode = os.stat(tmp_path / "inquiries.jsonl").st_ino
    for n in range(1, 40):
        await ledger.record(entry(str(n), float(n)))
    await ledger.due(1000.0, 0.0, 100)
    await ledger.close()
    assert os.stat(tmp_path / "inquiries.jsonl").st_ino == inode
    assert len(lines(tmp_path / "inquiries.jsonl")) == 40


async def test_file_torn_last_line_is_ended_not_glued(tmp_path: Path) -> None:
    path = tmp_path / "inquiries.jsonl"
    first = FileLedger(tmp_path)
    await first.record(entry("1", 100.0))
    with path.open("ab") as handle:
        handle.write(b'{"code":"888992","ps')  # a crash mid-write
    reopened = FileLedger(tmp_path)
    await reopened.record(entry("3", 300.0))
    assert codes(await reopened.due(1000.0, 0.0, 10)) == ["1", "3"]
    assert lines(path)[-1] == entry("3", 300.0).encode()


async def test_file_append_waits_for_a_compaction_elsewhere(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path)
    await ledger.record(entry("1", 100.0))
    # Another process compacting holds the lock exclusively: the append must not slip in.
    lock = os.open(tmp_path / "inquiries.jsonl.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        task = asyncio.create_task(ledger.record(entry("2", 200.0)))
        done, _ = await asyncio.wait({task}, timeout=0.2)
        assert not done
        assert len(lines(tmp_path / "inquiries.jsonl")) == 1
    finally:
        os.close(lock)
    await task
    assert codes(await ledger.due(1000.0, 0.0, 10)) == ["1", "2"]


async def test_file_record_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = FileLedger(tmp_path / "ledger")
    (tmp_path / "ledger" / "inquiries.jsonl").mkdir()  # every append now fails for real
    await ledger.record(entry("1", 100.0))
    assert "VA **8991 will not be reconciled" in caplog.text
    with pytest.raises(OSError):
        await ledger.settle("888991")  # the reconciler's calls do raise


# -- Redis backend -------------------------------------------------------------------------------


async def test_redis_keys_share_the_journal_hash_tag(redis_server: RedisServer) -> None:
    ledger = RedisLedger.from_settings(CacheSettings(url=redis_server.url, prefix="shop:"))
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await ledger.record(entry("1", 100.0))
        keys = sorted(k.decode() if isinstance(k, bytes) else k for k in await raw.keys("*"))
        assert keys == ["shop:v1:{pay}:ledger:answered", "shop:v1:{pay}:ledger:entries"]
        assert await raw.zscore(keys[0], "888991") == 100.0
    finally:
        await raw.aclose()
        await ledger.close()


async def test_redis_down_costs_one_failure_per_interval(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="doku_gateway")
    ledger = RedisLedger.from_settings(
        CacheSettings(url=redis_server.url, redis_retry_interval=60.0)
    )
    try:
        await ledger.record(entry("1", 100.0))
        redis_server.stop()
        started = time.monotonic()
        for n in range(20):
            await ledger.record(entry(str(n), 200.0))
        assert time.monotonic() - started < 2.0
        assert caplog.text.count("inquiry ledger not written") == 1
        with pytest.raises(RedisConnectionError):
            await ledger.due(1000.0, 0.0, 10)
    finally:
        await ledger.close()


# -- choosing the backend -------------------------------------------------------------------------


async def test_create_ledger_follows_the_journal(keys: Keys, redis_server: RedisServer) -> None:
    embedded = make_settings(keys)
    file_ledger = create_ledger(embedded)
    assert isinstance(file_ledger, FileLedger)
    assert file_ledger.path == Path(embedded.payment.journal_dir) / "inquiries.jsonl"
    await file_ledger.close()

    forced_file = make_settings(keys, cache={"url": redis_server.url}, payment={"journal": "file"})
    other = create_ledger(forced_file)
    assert isinstance(other, FileLedger)
    await other.close()

    shared = create_ledger(make_settings(keys, cache={"url": redis_server.url}))
    try:
        assert isinstance(shared, RedisLedger)
        await shared.record(entry("1", 100.0))
        assert codes(await shared.due(1000.0, 0.0, 10)) == ["1"]
    finally:
        await shared.close()


async def test_any_echoed_string_round_trips_and_spares_its_batch(tmp_path: Path) -> None:
    # A lone surrogate is valid JSON text DOKU may send in inquiryRequestId; the ledger's notes
    # are written together, so one such entry must neither fail nor take the others with it.
    ledger = FileLedger(tmp_path)
    odd = entry("8001", 100.0, inquiry_request_id="INQ-\ud800-\n-\u00fc")
    plain = entry("8002", 101.0)
    ledger.note(odd)
    ledger.note(plain)
    assert await ledger.due(1000.0, 0.0, 10) == [odd, plain]
    await ledger.close()


def test_live_count_agrees_with_the_fold() -> None:
    # The compaction decides from a cheap count; it must count what the full parse keeps.
    lines = [
        entry("1", 1.0).encode(),
        entry("2", 2.0).encode(),
        entry("1", 3.0).encode(),
        b'{"code":"888992","settled":true}',
        b'{"psid":"   88899","code":"888993","cust":"3","va":"x","inq":"i","trx":null,"at":4}',
        b'{"code":"888994","sett',  # torn
    ]
    assert len(_live_lines(lines)) == len(_fold(lines)) == 2


async def test_file_of_notes_only_is_not_counted_as_it_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting a large ledger holds the interpreter; VAs answered and never paid are all live,
    so a file of notes alone is not counted however it grows. Settles make it worth counting."""
    import gateway.payments.ledger.file as ledger_file

    counted: list[Path] = []
    real = ledger_file._compact

    def counting(lock_path: Path, path: Path) -> int:
        counted.append(path)
        return real(lock_path, path)

    monkeypatch.setattr(ledger_file, "_compact", counting)
    ledger = FileLedger(tmp_path, compact_min_bytes=1)
    for n in range(200):
        ledger.note(entry(f"3{n:03d}", float(n)))
        if n % 20 == 19:
            ledger._write_noted()  # as the 50 ms timer does: the file doubles several times
    await ledger.close()
    assert counted == []
    for n in range(150):
        ledger.forget(f"888993{n:03d}")
    ledger._write_noted()
    await ledger.close()
    assert counted, "three quarters settled: the file is counted (and compacted)"
    assert len(lines(tmp_path / "inquiries.jsonl")) == 50


async def test_the_ledger_rides_in_the_state_backends_pipeline(
    keys: Keys, redis_server: RedisServer
) -> None:
    """Given the state backend's pipeline, the ledger's writes ride in it: a cache miss's
    lookup and its note go in one round trip, not one per store. (The ledger's own client here
    points nowhere: what reaches Redis went through the state's pipeline.) Closing the ledger
    leaves that pipeline to its owner."""
    from gateway.metrics import Metrics
    from gateway.state import create_state

    settings = make_settings(keys, cache={"url": redis_server.url})
    state = create_state(settings.cache, Metrics())
    batch = getattr(state, "batcher", None)  # what create_app hands create_ledger
    assert batch is not None
    nowhere = aioredis.Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    ledger = RedisLedger(nowhere, settings.cache.prefix, batch=batch)
    try:
        assert await state.get("8889900009999") is None  # scripts and connection ready
        before = batch.round_trips
        notes = [entry(f"{n}", 100.0 + n) for n in range(20)]
        for note in notes:
            ledger.note(note)
        assert await state.get("8889900009999") is None  # a lookup queued in the same turn
        assert batch.round_trips - before in (1, 2)  # (2: the ledger's script loaded first)
        await ledger.close()
        assert await state.get("8889900009999") is None  # the pipeline still runs
        reader = create_ledger(settings)  # its own pipeline: another pod's view
        try:
            assert codes(await reader.due(1000.0, 0.0, 100)) == [e.customer_no for e in notes]
        finally:
            await reader.close()
    finally:
        await state.close()


@examples(deadline=None, max_examples=200)
@given(
    st.lists(st.tuples(st.sampled_from("12345"), st.booleans(), st.integers(0, 50)), max_size=60)
)
def test_a_compaction_folds_only_the_lines_of_the_vas_left(
    steps: list[tuple[str, bool, int]],
) -> None:
    """What the compaction keeps (the fold of the live VAs' lines since their last tombstone)
    is the fold of the whole file: notes out of order, repeated, settled and noted again."""
    lines = [
        _tombstone(f"88899{customer}") if settled else entry(customer, float(at)).encode()
        for customer, settled, at in steps
    ]
    live = _live_lines(lines)
    assert _fold(line for kept in live.values() for line in kept) == _fold(lines)
    assert len(live) == len(_fold(lines))


def test_a_compaction_of_a_large_ledger_pauses_between_stretches_of_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a thread, a compaction's loops would hold the interpreter (and the event loop
    with it) for seconds on a day's ledger: every so many lines it sleeps. What it keeps is
    unchanged: the VAs left, each as its newest note."""
    from gateway.payments.ledger import file as ledger_file

    pauses: list[None] = []
    monkeypatch.setattr(ledger_file, "_pause", lambda: pauses.append(None))
    notes = [entry(f"{n:06d}", 100.0).encode() for n in range(5000)]
    newer = [entry(f"{n:06d}", 200.0).encode() for n in range(4900, 5000)]
    paid = [_tombstone(f"88899{n:06d}") for n in range(4900)]
    path = tmp_path / "inquiries.jsonl"
    path.write_bytes(b"\n".join(notes + paid + newer) + b"\n")
    ledger_file._compact(tmp_path / "inquiries.jsonl.lock", path)
    lines = len(notes) + len(paid) + len(newer)
    assert len(pauses) >= lines // ledger_file._PAUSE_EVERY
    kept = _fold(path.read_bytes().splitlines())
    assert sorted(kept) == [f"88899{n:06d}" for n in range(4900, 5000)]
    assert {e.answered_at for e in kept.values()} == {200.0}


async def test_notes_wait_in_order_while_a_compaction_holds_the_lock_without_a_thread(
    tmp_path: Path,
) -> None:
    """Notes flushed while a compaction (here: another process) holds the ledger's lock stay
    queued, in order, and no worker thread is parked on the lock (parked threads took the whole
    default executor, and the payment journal's fsyncs waited behind them); they land once
    the lock is free, and close() writes what is left."""
    ledger = FileLedger(tmp_path)
    await ledger.record(entry("0", 50.0))
    lock = os.open(tmp_path / "inquiries.jsonl.lock", os.O_RDWR)
    threads = threading.active_count()
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for n in range(1, 6):
            ledger.note(entry(f"{n}", 100.0 + n))
            if n == 3:
                ledger.forget("888992")  # after its note, in the same queue
            await asyncio.sleep(2 * ledger_note_delay())  # a flush finds the lock held
        assert threading.active_count() == threads
        assert len(lines(tmp_path / "inquiries.jsonl")) == 1
    finally:
        os.close(lock)
    await ledger.close()
    assert codes(await FileLedger(tmp_path).due(1000.0, 0.0, 10)) == ["0", "1", "3", "4", "5"]


def ledger_note_delay() -> float:
    from gateway.payments.ledger.file import NOTE_DELAY

    return NOTE_DELAY


async def test_notes_waiting_for_a_lock_held_too_long_are_dropped_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process stuck with the lock: the waiting hints stop growing in memory past
    MAX_WAITING_LINES (logged as not reconciled); notes after the lock is free land."""
    from gateway.payments.ledger import file as ledger_file

    monkeypatch.setattr(ledger_file, "MAX_WAITING_LINES", 3)
    ledger = FileLedger(tmp_path)
    await ledger.record(entry("0", 50.0))
    lock = os.open(tmp_path / "inquiries.jsonl.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for n in range(1, 6):
            ledger.note(entry(f"{n}", 100.0 + n))
        ledger._write_noted()  # a flush finds the lock held, with more than 3 lines waiting
        assert ledger._noted == []
        assert "will not be reconciled" in caplog.text
    finally:
        os.close(lock)
    ledger.note(entry("6", 106.0))
    await ledger.close()
    assert codes(await FileLedger(tmp_path).due(1000.0, 0.0, 10)) == ["0", "6"]
