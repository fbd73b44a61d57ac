"""The embedded file journal: whole-or-nothing appends, torn lines, group commit, retention."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from gateway.payments.journal._files import Appended
from gateway.payments.journal.base import JournalEntry
from gateway.payments.journal.file import _RELEASE_STEP, FileJournal

pytestmark = pytest.mark.anyio

CODE = "8889900001234"


def entry(prid: str, code: str = CODE, at: float | None = None) -> JournalEntry:
    body = {"paymentRequestId": prid, "virtualAccountNo": "   88899" + code[5:]}
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return JournalEntry(prid, code, "88899", body, time.time() if at is None else at, raw=raw)


async def pending_ids(journal: FileJournal) -> list[str]:
    lease = await journal.read(0, timeout=0.01)
    assert lease is not None
    return [e.payment_request_id for e in lease.entries]


async def deliver_all(journal: FileJournal) -> list[str]:
    """What a deliverer does with everything pending: mark delivered, then done."""
    delivered: list[str] = []
    while True:
        lease = await journal.read(0, timeout=0.01)
        assert lease is not None
        if not lease.entries:
            return delivered
        for item in lease.entries:
            await journal.mark_delivered(item.payment_request_id)
            await journal.done(0, item)
            delivered.append(item.payment_request_id)


def records(directory: Path) -> list[dict[str, object]]:
    """Every line of payments.jsonl, each of which must be a whole JSON record."""
    data = (directory / "payments.jsonl").read_bytes()
    assert data.endswith(b"\n") or not data
    return [json.loads(line) for line in data.splitlines()]


# -- a full disk ---------------------------------------------------------------------------------


class FillingDisk:
    """``os.write`` on a disk with ``room`` bytes left: a short write, then ENOSPC."""

    def __init__(self, room: int) -> None:
        self.room = room

    def __call__(self, fd: int, data: memoryview) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = os.write(fd, data[: self.room])
        self.room -= written
        return written


async def test_a_short_write_is_refused_and_cut_back(tmp_path: Path) -> None:
    disk = FillingDisk(room=1 << 20)
    journal = FileJournal(tmp_path, write=disk)
    await journal.append(entry("PR-1"))
    size = (tmp_path / "payments.jsonl").stat().st_size
    disk.room = 40  # the next line does not fit: os.write takes 40 bytes of it, then ENOSPC
    with pytest.raises(OSError, match="No space left"):
        await journal.append(entry("PR-2"))
    assert (tmp_path / "payments.jsonl").stat().st_size == size  # no fragment left
    assert await journal.find("PR-2") is None
    disk.room = 1 << 20  # space freed: DOKU's retry is journaled, whole
    stored, new = await journal.append(entry("PR-2"))
    assert new and stored.payment_request_id == "PR-2"
    await journal.append(entry("PR-3"))
    assert [r["prid"] for r in records(tmp_path)] == ["PR-1", "PR-2", "PR-3"]
    reopened = FileJournal(tmp_path)
    assert await pending_ids(reopened) == ["PR-1", "PR-2", "PR-3"]
    assert reopened.unreadable == 0


async def test_a_failed_fsync_is_not_acknowledged(tmp_path: Path) -> None:
    failing = True

    def fsync(fd: int) -> None:
        if failing:
            raise OSError(errno.EIO, "Input/output error")
        os.fsync(fd)

    journal = FileJournal(tmp_path, fsync=fsync)
    with pytest.raises(OSError, match="Input/output"):
        await journal.append(entry("PR-1"))
    assert (tmp_path / "payments.jsonl").read_bytes() == b""
    failing = False
    assert (await journal.append(entry("PR-1")))[1]


async def test_a_delivery_record_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    disk = FillingDisk(room=1 << 20)
    journal = FileJournal(tmp_path, write=disk)
    await journal.append(entry("PR-1"))
    disk.room = 5
    with pytest.raises(OSError):
        await journal.mark_delivered("PR-1")
    assert not await journal.is_delivered("PR-1")
    disk.room = 1 << 20
    await journal.mark_delivered("PR-1")
    assert await FileJournal(tmp_path).is_delivered("PR-1")
    assert len(records(tmp_path)) == 2


# -- torn and unreadable lines -------------------------------------------------------------------


async def test_a_torn_last_line_is_cut_off_before_the_next_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = FileJournal(tmp_path)
    await first.append(entry("PR-1"))
    whole = (tmp_path / "payments.jsonl").stat().st_size
    with (tmp_path / "payments.jsonl").open("ab") as handle:
        handle.write(entry("PR-2").encode()[:30])  # a crash mid-write: never acknowledged
    after_crash = FileJournal(tmp_path)
    assert await pending_ids(after_crash) == ["PR-1"]
    with caplog.at_level(logging.ERROR, "doku_gateway.journal"):
        await after_crash.append(entry("PR-3"))
    assert f"unfinished line at byte {whole}" in caplog.text
    assert after_crash.unreadable == 1
    # The next acknowledged payment is a line of its own, readable after a restart.
    assert [r["prid"] for r in records(tmp_path)] == ["PR-1", "PR-3"]
    restarted = FileJournal(tmp_path)
    assert await pending_ids(restarted) == ["PR-1", "PR-3"]
    assert (await restarted.append(entry("PR-3")))[1] is False


async def test_a_torn_dead_letter_line_is_cut_off_too(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    stored, _ = await journal.append(entry("PR-1"))
    (tmp_path / "dead.jsonl").write_bytes(b'{"id":"1-1","entry":{"pr')
    assert await journal.dead_letters() == []  # unreadable, and not in the way
    await journal.dead_letter(stored, "RuntimeError: boom", 3)
    letters = await FileJournal(tmp_path).dead_letters()
    assert [d.entry.payment_request_id for d in letters] == ["PR-1"]


async def test_an_unreadable_line_is_surfaced_with_its_offset_never_merged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = FileJournal(tmp_path)
    await first.append(entry("PR-1"))
    offset = (tmp_path / "payments.jsonl").stat().st_size
    with (tmp_path / "payments.jsonl").open("ab") as handle:
        handle.write(b"\x00\xffgarbage\n")
    await FileJournal(tmp_path).append(entry("PR-2"))
    with caplog.at_level(logging.ERROR, "doku_gateway.journal"):
        reopened = FileJournal(tmp_path)
    assert f"unreadable line at byte {offset}" in caplog.text
    assert reopened.unreadable == 1
    assert await pending_ids(reopened) == ["PR-1", "PR-2"]


async def test_an_entry_glued_onto_a_torn_line_by_an_older_gateway_is_recovered(
    tmp_path: Path,
) -> None:
    # What the journal looked like after the defect: a fragment, then the next acknowledged
    # entry on the same line.
    legacy = json.dumps({"prid": "PR-2", "code": CODE, "partner": "88899", "at": 1.0, "body": {}})
    (tmp_path / "payments.jsonl").write_bytes(b'{"prid":"PR-1","co' + legacy.encode() + b"\n")
    journal = FileJournal(tmp_path)
    assert journal.unreadable == 1
    assert await pending_ids(journal) == ["PR-2"]


# -- identifiers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prid", ["\ud800", "A\nB", "\udfff\ud800", "\ud800\udfff", "x\u2028y\x00", '"}\n{"']
)
async def test_any_json_string_is_an_identifier_that_round_trips(tmp_path: Path, prid: str) -> None:
    journal = FileJournal(tmp_path)
    assert (await journal.append(entry(prid)))[1]
    assert await deliver_all(journal) == [prid]
    assert await journal.is_delivered(prid)
    restarted = FileJournal(tmp_path)
    assert await restarted.is_delivered(prid)
    assert await pending_ids(restarted) == []
    for part in prid.split("\n"):
        assert not await restarted.is_delivered(part) or part == prid
    found = await restarted.find(prid)
    assert found is not None and found.body["paymentRequestId"] == prid
    assert (await restarted.append(entry(prid)))[1] is False


async def test_a_deep_body_is_journaled_from_a_deep_stack(tmp_path: Path) -> None:
    depth = 900
    raw = b'{"paymentRequestId":"PR-DEEP","additionalInfo":' + b"[" * depth + b"]" * depth + b"}"
    body = await asyncio.to_thread(json.loads, raw)  # parsed where the stack is shallow
    deep = JournalEntry("PR-DEEP", CODE, "88899", body, time.time(), raw=raw)

    def from_deep_stack(levels: int) -> bytes:
        return deep.encode() if levels == 0 else from_deep_stack(levels - 1)

    line = from_deep_stack(500)  # what a deep handler call chain leaves of the stack
    assert JournalEntry.decode(line).body == body
    journal = FileJournal(tmp_path)
    assert (await journal.append(deep))[1]
    restarted = FileJournal(tmp_path)
    found = await restarted.find("PR-DEEP")
    assert found is not None and found.raw == raw and found.body == body


async def test_lines_of_an_older_gateway_are_still_read(tmp_path: Path) -> None:
    old = {"prid": "PR-OLD", "code": CODE, "partner": "88899", "at": 1.0, "body": {"a": [1]}}
    (tmp_path / "payments.jsonl").write_text(json.dumps(old) + "\n")
    (tmp_path / "delivered.log").write_text("PR-OLD\n")
    journal = FileJournal(tmp_path, keep_delivered=0)
    assert await journal.is_delivered("PR-OLD")
    assert await pending_ids(journal) == []
    found = await journal.find("PR-OLD")
    assert found is not None and found.body == {"a": [1]} and found.raw is None


# -- group commit --------------------------------------------------------------------------------


async def test_concurrent_appends_share_fsyncs_and_wait_for_theirs(tmp_path: Path) -> None:
    path = tmp_path / "payments.jsonl"
    durable: set[str] = set()
    fsyncs = 0
    lock = threading.Lock()

    def fsync(fd: int) -> None:
        nonlocal fsyncs
        time.sleep(0.02)  # a disk that takes its time
        os.fsync(fd)
        with lock:
            fsyncs += 1
            durable.update(json.loads(line)["prid"] for line in path.read_bytes().splitlines())

    journal = FileJournal(tmp_path, fsync=fsync)

    async def notify(prid: str) -> None:
        _, new = await journal.append(entry(prid))
        assert new
        with lock:
            assert prid in durable, "acknowledged before the fsync covering it"

    appends = 50
    await asyncio.gather(*(notify(f"PR-{n}") for n in range(appends)))
    assert fsyncs < appends / 5
    assert len(records(tmp_path)) == appends


async def test_appends_are_synced_in_the_journals_own_threads_when_the_default_executor_is_full(
    tmp_path: Path,
) -> None:
    # Anything else in the process (a ledger waiting on its lock, a plugin's blocking call) may
    # take every thread of the default executor: the fsyncs acknowledgements wait for go on.
    loop = asyncio.get_running_loop()
    default = ThreadPoolExecutor(1)
    loop.set_default_executor(default)
    release = threading.Event()
    blocker = loop.run_in_executor(None, release.wait)
    threads: list[str] = []

    def fsync(fd: int) -> None:
        threads.append(threading.current_thread().name)
        os.fsync(fd)

    journal = FileJournal(tmp_path, fsync=fsync)
    try:
        async with asyncio.timeout(30):
            outcomes = await asyncio.gather(*(journal.append(entry(f"PR-{n}")) for n in range(5)))
        assert [new for _, new in outcomes] == [True] * 5
        assert threads and all(name.startswith("payment-journal") for name in threads)
        assert not blocker.done()
    finally:
        release.set()
        await blocker
        await journal.close()
    assert journal._executor is None  # its threads let go with it


async def test_an_append_is_answered_within_two_turns_of_the_loop_after_its_write(
    tmp_path: Path,
) -> None:
    # The thread's end calls the writer back (one turn), which wakes the caller (the next). A
    # task awaiting the thread took two more turns per batch: under load, each of them about
    # a millisecond that every acknowledgement waited for.
    turns = 0
    running = True
    written_at: list[int] = []

    async def count() -> None:
        nonlocal turns
        while running:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.get_running_loop().create_task(count())
    journal = FileJournal(tmp_path)
    append_locked = journal._append_locked

    def counted(data: bytes) -> Appended:
        appended = append_locked(data)
        written_at.append(turns)  # in the thread, as it ends
        return appended

    journal._append_locked = counted  # type: ignore[method-assign]
    gaps = []
    try:
        for n in range(20):
            await journal.append(entry(f"PR-{n}"))
            gaps.append(turns - written_at[-1])
    finally:
        running = False
        await counter
        await journal.close()
    assert max(gaps) <= 2, gaps


async def test_the_writer_keeps_the_journal_and_its_lock_open_between_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each system call in the writer's thread waits for the interpreter once more: the files
    # are opened once, not per batch.
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        opened.append(Path(path).name)
        return real_open(path, flags, mode, **kwargs)

    journal = FileJournal(tmp_path)
    await journal.append(entry("PR-0"))  # creates the file
    monkeypatch.setattr(os, "open", counting_open)
    for n in range(1, 20):
        await journal.append(entry(f"PR-{n}"))
    assert opened == []
    # Replaced under it (another process compacted): the next append goes to the new file.
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes((tmp_path / "payments.jsonl").read_bytes())
    os.replace(copy, tmp_path / "payments.jsonl")
    await journal.append(entry("PR-AFTER"))
    assert opened.count("payments.jsonl") == 1
    await journal.close()
    monkeypatch.undo()
    assert [r["prid"] for r in records(tmp_path)][-2:] == ["PR-19", "PR-AFTER"]
    restarted = FileJournal(tmp_path)
    assert len(await pending_ids(restarted)) == 21


async def test_a_batch_no_thread_takes_is_refused_and_the_writer_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = FileJournal(tmp_path)
    executor = journal._executor_of()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(executor, "submit", refuse)
    with pytest.raises(RuntimeError):
        async with asyncio.timeout(10):
            await journal.append(entry("PR-REFUSED"))
    monkeypatch.undo()
    async with asyncio.timeout(10):  # the writer was not left busy
        _, new = await journal.append(entry("PR-NEXT"))
    assert new
    await journal.close()
    assert [r["prid"] for r in records(tmp_path)] == ["PR-NEXT"]


async def test_a_failed_batch_refuses_every_append_in_it(tmp_path: Path) -> None:
    disk = FillingDisk(room=300)
    journal = FileJournal(tmp_path, write=disk)
    results = await asyncio.gather(
        *(journal.append(entry(f"PR-{n}")) for n in range(20)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, OSError)]
    accepted = {r[0].payment_request_id for r in results if isinstance(r, tuple)}
    assert refused  # those were answered 5002501
    assert {str(r["prid"]) for r in records(tmp_path)} == accepted


async def test_concurrent_duplicates_make_one_line(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    results = await asyncio.gather(*(journal.append(entry("PR-1")) for _ in range(10)))
    assert [new for _, new in results].count(True) == 1
    assert len(records(tmp_path)) == 1


async def test_a_caller_that_gives_up_neither_stops_the_write_nor_fails_its_duplicate(
    tmp_path: Path,
) -> None:
    def slow_fsync(fd: int) -> None:
        time.sleep(0.05)
        os.fsync(fd)

    journal = FileJournal(tmp_path, fsync=slow_fsync)
    first = asyncio.create_task(journal.append(entry("PR-1")))
    await asyncio.sleep(0.01)  # queued, being written
    second = asyncio.create_task(journal.append(entry("PR-1")))
    await asyncio.sleep(0.01)
    first.cancel()  # DOKU hung up on the first notification
    stored, new = await second
    assert not new and stored.payment_request_id == "PR-1"
    assert first.cancelled()
    assert [r["prid"] for r in records(tmp_path)] == ["PR-1"]


# -- retention -----------------------------------------------------------------------------------


async def test_delivered_entries_are_compacted_to_their_ids(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, keep_delivered=5)
    for n in range(300):
        await journal.append(entry(f"PR-{n}"))
    undelivered = "PR-299"
    lease = await journal.read(0, timeout=0.01)
    assert lease is not None
    for item in (await journal.entries(limit=299))[:299]:
        if item.payment_request_id != undelivered:
            await journal.mark_delivered(item.payment_request_id)
            await journal.done(0, item)
    await journal.close()  # lets the compaction finish
    held = await journal.entries(limit=1000)
    assert len(held) <= 5 + 5 + 64 + 1  # history, slack, and the undelivered one
    assert undelivered in {e.payment_request_id for e in held}
    assert len(records(tmp_path)) <= 2 * len(held)
    restarted = FileJournal(tmp_path, keep_delivered=5)
    assert await pending_ids(restarted) == [undelivered]
    for n in range(299):
        # Compacted or not: still delivered, and DOKU's retry is a duplicate.
        assert await restarted.is_delivered(f"PR-{n}")
        stored, new = await restarted.append(entry(f"PR-{n}"))
        assert not new and stored.payment_request_id == f"PR-{n}"
    assert await restarted.has_payment(CODE)


async def test_compacted_ids_expire_after_keep_ids(tmp_path: Path) -> None:
    now = [10_000.0]
    journal = FileJournal(tmp_path, keep_delivered=0, keep_ids=100.0, clock=lambda: now[0])
    for n in range(70):
        await journal.append(entry(f"PR-{n}", at=now[0]))
    await deliver_all(journal)
    await journal.close()
    assert await journal.is_delivered("PR-0") and len(await journal.entries()) < 70
    now[0] += 101.0
    later = FileJournal(tmp_path, keep_delivered=0, keep_ids=100.0, clock=lambda: now[0])
    assert not await later.is_delivered("PR-0")  # past the duplicate window: forgotten
    assert await later.is_delivered("PR-69")  # still held whole, as history


async def test_vas_paid_longer_ago_than_keep_ids_are_forgotten_unless_still_held(
    tmp_path: Path,
) -> None:
    now = [10_000.0]
    journal = FileJournal(
        tmp_path, keep_delivered=0, keep_ids=100.0, clock=lambda: now[0], fsync=lambda fd: None
    )
    await journal.append(entry("PR-OLD", code="888990000001", at=now[0]))
    held, _ = await journal.append(entry("PR-HELD", code="888990000002", at=now[0]))
    await journal.dead_letter(held, "RuntimeError: boom", 3)  # held, never delivered
    await deliver_all(journal)
    now[0] += 101.0
    for n in range(70):  # enough deliveries for a compaction
        await journal.append(entry(f"PR-{n}", code="888990000003", at=now[0]))
    await deliver_all(journal)
    await journal.close()
    assert not await journal.has_payment("888990000001")
    assert await journal.has_payment("888990000002")
    assert await journal.has_payment("888990000003")
    assert set(journal._paid) == {"888990000002", "888990000003"}


async def test_a_compaction_lets_go_of_its_entries_a_slice_per_turn_of_the_loop(
    tmp_path: Path,
) -> None:
    # Thousands of entries let go of at once held every notification in flight for ~10 ms.
    journal = FileJournal(tmp_path, keep_delivered=1000, fsync=lambda fd: None)
    for n in range(2100):
        await journal.append(entry(f"PR-{n}"))
    held: list[int] = []
    watching = True

    async def watch() -> None:
        while watching:
            held.append(len(journal._entries))
            await asyncio.sleep(0)

    watcher = asyncio.get_running_loop().create_task(watch())
    await deliver_all(journal)
    await journal.close()
    watching = False
    await watcher
    held.append(len(journal._entries))
    drops = [before - after for before, after in pairwise(held)]
    assert held[-1] <= 1100  # compacted, down to about the history kept
    assert sum(drops) >= 1000
    assert max(drops) <= _RELEASE_STEP, max(drops)


async def test_dead_letters_outlive_compaction_and_can_be_replayed(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, keep_delivered=0)
    dead, _ = await journal.append(entry("PR-DEAD"))
    for n in range(100):
        await journal.append(entry(f"PR-{n}"))
    lease = await journal.read(0, timeout=0.01)
    assert lease is not None and lease.entries[0].payment_request_id == "PR-DEAD"
    await journal.dead_letter(dead, "RuntimeError: boom", 3)
    await journal.done(0, dead)
    await deliver_all(journal)
    await journal.close()
    restarted = FileJournal(tmp_path, keep_delivered=0)
    assert await pending_ids(restarted) == []
    [letter] = await restarted.dead_letters()
    assert await restarted.replay(letter.dead_id)
    assert await pending_ids(restarted) == ["PR-DEAD"]


async def test_the_reader_does_not_rescan_what_it_delivered(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, keep_delivered=10_000)
    for n in range(2000):
        await journal.append(entry(f"PR-{n}"))
    assert len(await deliver_all(journal)) == 2000
    # All 2000 are kept as history, none is looked at again by the reader.
    assert len(await journal.entries(limit=5000)) == 2000
    assert len(journal._queue) == 0  # the reader's cursor
    await journal.append(entry("PR-NEW"))
    assert await pending_ids(journal) == ["PR-NEW"]
    assert len(journal._queue) == 1


async def test_memory_and_file_stay_bounded_over_many_payments(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, keep_delivered=20)
    sizes = []
    for round_ in range(10):
        for n in range(200):
            await journal.append(entry(f"PR-{round_}-{n}"))
        await deliver_all(journal)
        await journal.close()
        sizes.append((tmp_path / "payments.jsonl").stat().st_size)
    assert len(await journal.entries(limit=10_000)) <= 20 + 20 + 64
    assert max(sizes[3:]) <= 2 * max(sizes[:3])  # flat, not growing with the traffic


async def test_lines_of_another_process_are_followed(tmp_path: Path) -> None:
    gateway_side = FileJournal(tmp_path)
    cli_side = FileJournal(tmp_path)  # e.g. `doku-gateway reconcile` in its own process
    await cli_side.append(entry("PR-CLI", "8889900005555"))
    assert await gateway_side.has_payment("8889900005555")
    stored, new = await gateway_side.append(entry("PR-CLI", "8889900005555"))
    assert not new and stored.payment_request_id == "PR-CLI"
    await gateway_side.append(entry("PR-GW"))
    assert await pending_ids(gateway_side) == ["PR-CLI", "PR-GW"]
    assert len(records(tmp_path)) == 2


async def test_a_sustained_burst_cannot_hold_off_compaction(tmp_path: Path) -> None:
    """Appends queued without a pause (a payday burst) still let the delivered entries be
    compacted once they reach twice the usual size: they are not held in memory until a lull."""
    # A disk whose fsync takes 2 ms: the next appends queue up while each batch is synced.
    journal = FileJournal(tmp_path, keep_delivered=5, fsync=lambda fd: time.sleep(0.002))
    busy_limit = 2 * (2 * 5 + 64)
    stop = asyncio.Event()
    counter = iter(range(1_000_000))

    async def producer() -> None:  # always one append queued behind the one being written
        while not stop.is_set():
            await journal.append(entry(f"BURST-{next(counter)}"))

    async def deliverer() -> None:
        while not stop.is_set():
            lease = await journal.read(0, timeout=0.01)
            assert lease is not None
            # Concurrently, as the deliverer does with a lease's VAs.
            await asyncio.gather(
                *(journal.mark_delivered(e.payment_request_id) for e in lease.entries)
            )
            for item in lease.entries:
                await journal.done(0, item)

    tasks = [asyncio.create_task(producer()) for _ in range(32)]
    tasks.append(asyncio.create_task(deliverer()))
    most = 0
    compacted = False
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            held = len(journal._history)
            most = max(most, held)
            if most > 2 * 5 + 64 and held < most // 2 and journal._writes:
                compacted = True  # it shrank while appends were waiting
                break
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert compacted, f"no compaction under load (most held: {most})"
    assert most <= busy_limit + 4 * 64 + 64  # bounded by the busy limit plus one lease
    await journal.close()


class HeldSideFile:
    """An fsync that holds the compaction's side file until the test lets it go (a large
    rewrite on a slow disk); every other fsync goes through."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".compacting") and not self.release.is_set():
            self.reached.set()
            assert self.release.wait(30), "the test never let the side file go"
        os.fsync(fd)


async def until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def delivered_history(journal: FileJournal, count: int, prefix: str = "PR") -> None:
    for n in range(count):
        await journal.append(entry(f"{prefix}-{n}"))
    await deliver_all(journal)


async def test_appends_are_acknowledged_while_a_compaction_writes_its_side_file(
    tmp_path: Path,
) -> None:
    """The compaction's big write happens beside the writer: notifications arriving meanwhile
    are journaled and acknowledged, then carried over into the compacted file, whole."""
    held = HeldSideFile()
    journal = FileJournal(tmp_path, keep_delivered=5, fsync=held)
    await delivered_history(journal, 100)
    await until(held.reached.is_set)  # the compaction is syncing its side file
    for n in range(20):  # each acknowledged while the side file is held
        stored, new = await asyncio.wait_for(journal.append(entry(f"LATE-{n}")), 10)
        assert new and stored.payment_request_id == f"LATE-{n}"
    late = [f"LATE-{n}" for n in range(20)]
    await journal.mark_delivered("LATE-0")
    held.release.set()
    await journal.close()
    assert len(await journal.entries(limit=1000)) < 100  # compacted
    written = [r.get("prid") for r in records(tmp_path)]
    assert [p for p in written if isinstance(p, str) and p.startswith("LATE-")] == late
    assert {"done": "LATE-0"} in records(tmp_path)
    assert not (tmp_path / "payments.jsonl.compacting").exists()
    restarted = FileJournal(tmp_path, keep_delivered=5)
    assert await pending_ids(restarted) == late[1:]
    for n in range(100):
        assert await restarted.is_delivered(f"PR-{n}")  # compacted to its id or kept whole
    assert await restarted.is_delivered("LATE-0")


async def test_lines_another_process_appends_during_a_compaction_are_carried_and_read(
    tmp_path: Path,
) -> None:
    held = HeldSideFile()
    gateway_side = FileJournal(tmp_path, keep_delivered=5, fsync=held)
    await delivered_history(gateway_side, 100)
    await until(held.reached.is_set)
    cli_side = FileJournal(tmp_path)  # `doku-gateway reconcile` in its own process
    await cli_side.append(entry("PR-CLI", "8889900005555"))
    held.release.set()
    await gateway_side.close()
    assert "PR-CLI" in [r.get("prid") for r in records(tmp_path)]
    assert await pending_ids(gateway_side) == ["PR-CLI"]  # taken in once, not twice
    assert await pending_ids(FileJournal(tmp_path)) == ["PR-CLI"]


async def test_a_journal_rewritten_by_another_process_meanwhile_is_not_switched(
    tmp_path: Path,
) -> None:
    """Another process compacted the directory between the side file and the switch: the
    switch is dropped (the side file with it) and nothing is lost."""
    held = HeldSideFile()
    journal = FileJournal(tmp_path, keep_delivered=5, fsync=held)
    await delivered_history(journal, 100)
    await until(held.reached.is_set)
    # What a rewrite by another process looks like: the same lines, a new file.
    path = tmp_path / "payments.jsonl"
    copy = tmp_path / "copy"
    copy.write_bytes(path.read_bytes())
    os.replace(copy, path)
    held.release.set()
    await journal.close()
    assert not (tmp_path / "payments.jsonl.compacting").exists()
    restarted = FileJournal(tmp_path, keep_delivered=5)
    assert await pending_ids(restarted) == []
    for n in range(100):
        assert await restarted.is_delivered(f"PR-{n}")


async def test_a_side_file_left_by_a_crash_is_ignored_then_replaced(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, keep_delivered=5)
    await journal.append(entry("PR-KEPT"))
    (tmp_path / "payments.jsonl.compacting").write_bytes(b'{"prid":"half a compaction')
    restarted = FileJournal(tmp_path, keep_delivered=5)
    assert await pending_ids(restarted) == ["PR-KEPT"]
    await delivered_history(restarted, 100, prefix="MORE")
    await restarted.close()
    assert not (tmp_path / "payments.jsonl.compacting").exists()
    assert await pending_ids(FileJournal(tmp_path, keep_delivered=5)) == []


async def test_a_side_file_that_cannot_be_synced_costs_no_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk while the compaction writes its side file: the side file is removed, the
    journal stays as it was, and appends go on being acknowledged."""

    def failing(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".compacting"):
            raise OSError(errno.ENOSPC, "No space left on device")
        os.fsync(fd)

    journal = FileJournal(tmp_path, keep_delivered=5, fsync=failing)
    with caplog.at_level(logging.WARNING, logger="gateway.journal"):
        await delivered_history(journal, 100)
        stored, new = await journal.append(entry("AFTER"))
        await journal.close()
    assert new and stored.payment_request_id == "AFTER"
    assert "not compacted" in caplog.text
    assert not (tmp_path / "payments.jsonl.compacting").exists()
    restarted = FileJournal(tmp_path, keep_delivered=5)
    assert await pending_ids(restarted) == ["AFTER"]
    for n in range(100):
        assert await restarted.is_delivered(f"PR-{n}")
