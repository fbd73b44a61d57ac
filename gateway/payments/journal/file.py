"""The embedded payment journal: fsync'd JSON lines in one directory, for one gateway process.

Files (every line one ASCII JSON record, see :mod:`.base`)::

    payments.jsonl   entries as received, and {"done": prid} once an entry is delivered
    ids.jsonl        {"gone": prid, "code": …, "at": …}: a compacted delivered entry's id
    dead.jsonl       dead letters (rewritten by ``payments replay``)
    unreadable.log   lines that could not be read, moved aside by a compaction
    journal.lock     flock: shared to read, exclusive to append or rewrite

Appends are group-committed: the notifications that arrive while one fsync runs are written
together and covered by the next one, and none is acknowledged before the fsync covering it
returned. An append is whole and fsync'd or cut back and refused, so a full disk answers DOKU
``5002501`` and leaves no fragment; a line torn by a crash (never acknowledged) is cut off before
the next append; a line that still cannot be read is logged with its byte offset and counted.

Retention: the ``keep_delivered`` most recently delivered entries stay whole (history); older
delivered entries are compacted to their paymentRequestId in ``ids.jsonl``, kept ``keep_ids``
seconds (longer than DOKU retries and ``reconcile`` looks back), so a late duplicate is still
recognised. Undelivered entries and dead letters are always kept. The deliverer reads from a
cursor (the entries not yet handled), never the whole history.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import math
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice, takewhile
from pathlib import Path
from typing import Any, TypeVar

from ...log import get_logger
from ._dead import DeadLetterFile
from ._files import (
    Appended,
    Fsync,
    Held,
    Identity,
    Write,
    append_synced,
    append_whole,
    fsync_dir,
    identity_of,
    locked,
    replace_file,
    split_lines,
    write_synced,
)
from .base import (
    LEASE,
    DeadLetter,
    Journal,
    JournalEntry,
    Lease,
    encode_line,
    on_fresh_stack,
    pack_text,
    unpack_text,
)

__all__ = ["KEEP_IDS", "FileJournal"]

_log = get_logger("journal")

#: Seconds a compacted entry's paymentRequestId is kept: DOKU retries for about 19 hours,
#: ``reconcile`` looks back two days.
KEEP_IDS = 3 * 86_400.0
# Delivered entries beyond the history that trigger a compaction (amortises its rewrite).
_SLACK = 64
_RETRY_COMPACTION = 60.0
# Where a record begins inside a line glued onto a torn one (written before lines were cut off).
_RECORD_STARTS = (b'{"prid":', b'{"done":')
# The journal's own threads: the writer's commit or switch, a compaction's first step, and one
# spare. Nothing else in the process queues in front of an fsync an acknowledgement waits for.
_THREADS = 3
# Compacted entries let go of per turn of the event loop: releasing one (its parsed body, its
# line, four dictionaries) costs a few microseconds, and a compaction drops up to thousands.
_RELEASE_STEP = 256

_T = TypeVar("_T")


_Outcome = asyncio.Future[tuple[JournalEntry, bool] | None]


@dataclass(slots=True)
class _Write:
    """A record waiting for the writer; its outcome goes to each future, one per caller (a
    caller that gives up cancels its own future only)."""

    line: bytes
    prid: str
    entry: JournalEntry | None  # None: a delivery record
    futures: list[_Outcome]


@dataclass(frozen=True, slots=True)
class _Compacted:
    unread: bytes
    unread_at: int
    end: int
    identity: Identity


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A compaction's first step done: what it drops, and where its side file stands."""

    going: list[str]  # the delivered entries compacted to their ids
    set_aside: int  # unreadable lines written to unreadable.log
    kept: int  # bytes of the side file: the entries still held
    offset: int  # payments.jsonl taken in up to here ...
    identity: Identity | None  # ... in this file


class FileJournal(Journal):
    """Embedded journal in ``directory``; ``fsync`` and ``write`` are seams for tests."""

    shards = 1

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        keep_delivered: int = 1000,
        keep_ids: float = KEEP_IDS,
        fsync: Fsync = os.fsync,
        write: Write = os.write,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._entries_path = self.directory / "payments.jsonl"
        self._ids_path = self.directory / "ids.jsonl"
        self._unreadable_path = self.directory / "unreadable.log"
        self._legacy_delivered_path = self.directory / "delivered.log"
        self._lock_path = self.directory / "journal.lock"
        self._keep = max(keep_delivered, 0)
        self._keep_ids = keep_ids
        self._fsync = fsync
        self._write = write
        self._clock = clock
        self._new = asyncio.Event()
        # Entries held whole, in journal order; those not yet handled, in order (the cursor).
        self._entries: dict[str, JournalEntry] = {}
        self._queue: deque[str] = deque()
        self._handled: set[str] = set()  # done() in this process
        self._delivered: set[str] = set()  # a delivery record was read or written
        self._history: deque[str] = deque()  # delivered entries held, oldest delivery first
        # The lines this process wrote for the entries held, and the id stubs of the delivered
        # ones, made as they come: a compaction joins bytes instead of encoding a thousand
        # entries on the event loop while notifications wait behind it.
        self._lines: dict[str, bytes] = {}
        self._stubs: dict[str, bytes] = {}
        self._gone: OrderedDict[str, tuple[float, str]] = OrderedDict()  # compacted ids
        # VA → its latest payment's received_at, in the order those were noted (about oldest
        # first), so that expired VAs are pruned from the front, never by a scan of them all.
        self._paid: dict[str, float] = {}
        self._seq = 0
        self._set_aside: list[tuple[int, bytes]] = []  # unreadable lines, for unreadable.log
        # Bytes of payments.jsonl taken in, and which file that was. Lines appended later, by
        # this process or another (`doku-gateway reconcile`), are read from there; a
        # paymentRequestId's first line wins.
        self._offset = 0
        self._identity: Identity | None = None
        self._ids_lines = 0
        self._writes: list[_Write] = []
        self._inflight: dict[str, _Write] = {}  # entries queued or being written
        self._busy = False  # the writer has a batch or a switch in a thread
        self._idle = asyncio.Event()  # ... and nothing queued
        self._idle.set()
        self._compaction: asyncio.Task[_Prepared | None] | None = None
        self._release: asyncio.Task[None] | None = None  # a switched compaction's memory
        self._compact_fd: int | None = None  # the compaction lock, from side file to switch
        self._side_path = self.directory / "payments.jsonl.compacting"
        self._compact_lock_path = self.directory / "compaction.lock"
        self._committing = False
        self._compact_after = 0.0
        self._dead = DeadLetterFile(self.directory / "dead.jsonl", self._lock_path, fsync, clock)
        self._locks: set[str] = set()
        self._executor: ThreadPoolExecutor | None = None
        # payments.jsonl and the lock, kept open for the writer's appends (only they use it:
        # one at a time, in a thread of the executor).
        self._held = Held(self._entries_path, self._lock_path)
        self._load_ids()
        self._load_legacy_delivered()
        self._follow(block=True)
        self._reload_dead()

    # -- appending ------------------------------------------------------------------------------

    async def append(self, entry: JournalEntry) -> tuple[JournalEntry, bool]:
        self._follow()  # another process (reconcile) may have journaled it already
        prid = entry.payment_request_id
        known = self._known(entry)
        if known is not None:
            return known, False
        future: _Outcome = asyncio.get_running_loop().create_future()
        pending = self._inflight.get(prid)
        if pending is not None:  # a concurrent duplicate: the first one's outcome
            pending.futures.append(future)
            result = await future
            assert result is not None
            return result[0], False
        write = _Write(entry.encode() + b"\n", prid, entry, [future])
        self._inflight[prid] = write
        self._submit(write)
        # Cancelled (DOKU hung up): the write goes on, the ack does not.
        result = await future
        assert result is not None
        return result

    def _known(self, entry: JournalEntry) -> JournalEntry | None:
        prid = entry.payment_request_id
        held = self._entries.get(prid)
        if held is not None:
            return held
        gone = self._gone.get(prid)
        if gone is not None:
            # Compacted: the duplicate is answered from its own body (the same payment's).
            return JournalEntry(
                prid, gone[1], entry.partner_prefix, entry.body, gone[0], "", entry.raw
            )
        return None

    async def mark_delivered(self, payment_request_id: str) -> None:
        if await self.is_delivered(payment_request_id):
            return
        future: _Outcome = asyncio.get_running_loop().create_future()
        self._submit(_Write(_done(payment_request_id), payment_request_id, None, [future]))
        await future

    def _submit(self, write: _Write) -> None:
        self._writes.append(write)
        self._kick()

    def _kick(self) -> None:
        """The writer's next step, unless one is in flight; called whenever one may be due.

        The writer is a chain of callbacks, not a task: a batch's fsync returns straight into
        :meth:`_committed` (one hop from the thread to the loop), which answers the batch and
        sends off the next one in the same turn. A task awaiting each fsync took two more turns
        of the loop per batch (the thread's future, then the task's wake-up): under load, a
        millisecond each, which every acknowledgement waited for once or twice.

        A compaction writes the entries it keeps to a side file while the writer goes on
        appending; the writer stops only for its last step, the switch to that file (the lines
        appended meanwhile copied over, one small fsync). Rewriting the journal in the writer's
        place held every notification in flight for 13-17 ms, a few times a second under a
        burst: the payment p99.
        """
        if self._busy:
            return
        compaction = self._compaction
        if compaction is not None and compaction.done():
            self._compaction = None
            try:  # the writer must outlive a failed compaction: appends are queued behind it
                prepared = None if compaction.cancelled() else compaction.result()
            except Exception:
                _log.exception("payment journal %s not compacted", self._entries_path)
                self._compact_after = self._clock() + _RETRY_COMPACTION
                prepared = None
            if prepared is not None:
                self._busy = self._committing = True
                self._idle.clear()
                self._then(
                    self._switch_files,
                    (prepared, self._offset),
                    lambda done: self._switched(prepared, done),
                )
                return
        elif compaction is None and self._compaction_due():
            compaction = asyncio.get_running_loop().create_task(
                self._prepare(), name="payment-journal-compaction"
            )
            # Its end starts the writer again if it is idle by then: the switch is its job.
            compaction.add_done_callback(lambda _: self._kick())
            self._compaction = compaction
        if not self._writes:
            self._idle.set()
            return
        batch, self._writes = self._writes, []
        self._busy = self._committing = True
        self._idle.clear()
        self._then(
            self._append_locked,
            (b"".join(write.line for write in batch),),
            lambda done: self._committed(batch, done),
        )

    def _then(
        self,
        function: Callable[..., _T],
        args: tuple[Any, ...],
        then: Callable[[Future[_T]], None],
    ) -> None:
        """``function(*args)`` in one of the journal's threads; ``then(its future)`` on the loop,
        called from the thread as it ends (no task to wake in between)."""
        loop = asyncio.get_running_loop()

        def ended(done: Future[_T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(then, done)

        try:
            job = self._executor_of().submit(function, *args)
        except RuntimeError as exc:  # no thread takes it (the interpreter is shutting down)
            job = Future()
            job.set_exception(exc)  # the batch is refused, not left waiting
            loop.call_soon(then, job)
            return
        job.add_done_callback(ended)

    def _committed(self, batch: list[_Write], done: Future[Appended]) -> None:
        self._busy = self._committing = False
        try:
            appended = done.result()
        except BaseException as exc:
            _log.error(
                "payment journal %s not written (%s: %s): %d record(s) not acknowledged",
                self._entries_path,
                type(exc).__name__,
                exc,
                len(batch),
            )
            for write in batch:
                self._settle(write, exc)
        else:
            self._identity = appended.identity
            self.unreadable += bool(appended.torn)
            self._ingest(appended.unread, appended.unread_at)
            for write in batch:
                if write.entry is None:
                    self._delivered_now(write.prid)
                    self._settle(write, None)
                else:
                    outcome = self._admit(write.entry)
                    if outcome[1]:
                        self._lines[write.prid] = write.line
                    self._settle(write, outcome)
            self._offset = appended.end
            self._new.set()
        self._kick()

    def _settle(
        self, write: _Write, outcome: tuple[JournalEntry, bool] | BaseException | None
    ) -> None:
        if write.entry is not None and self._inflight.get(write.prid) is write:
            del self._inflight[write.prid]
        for n, future in enumerate(write.futures):
            if future.done():  # its caller gave up
                continue
            if outcome is None or isinstance(outcome, tuple):
                # The first caller wrote it; a concurrent duplicate finds it written.
                future.set_result(outcome if n == 0 or outcome is None else (outcome[0], False))
            elif isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.cancel()

    def _executor_of(self) -> ThreadPoolExecutor:
        """The journal's own threads, not the default executor: there, anything else in the
        process (a ledger waiting on its lock, a plugin's blocking call) could take every
        thread and hold the fsync that acknowledgements wait for."""
        if self._executor is None:  # made on first use, and again after close()
            self._executor = ThreadPoolExecutor(_THREADS, thread_name_prefix="payment-journal")
        return self._executor

    def _in_thread(self, function: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        return asyncio.get_running_loop().run_in_executor(self._executor_of(), function, *args)

    def _append_locked(self, data: bytes) -> Appended:
        with self._held.locked():
            return append_whole(
                self._entries_path,
                data,
                offset=self._offset,
                identity=self._identity,
                write=self._write,
                fsync=self._fsync,
                held=self._held,
            )

    # -- reading the file -----------------------------------------------------------------------

    def _follow(self, *, block: bool = False) -> None:
        """Take in the lines appended since the last look (by another process, in practice)."""
        if self._committing:
            return  # the writer reads them under its lock, with its batch
        # One stat, no lock, on every append: the same file at the offset read up to has
        # nothing new (an append in progress has grown it; a rewrite has a new identity).
        if identity_of(self._entries_path) == (self._identity, self._offset):
            return
        with locked(self._lock_path, exclusive=False, block=block) as held:
            if not held:
                return  # someone is appending: look next time
            found = identity_of(self._entries_path)
            if found is None:
                return
            identity, size = found
            if identity != self._identity or size < self._offset:
                # Rewritten by someone else: read it again; known ids are skipped.
                self._identity, self._offset = identity, 0
            if size <= self._offset:
                return
            with self._entries_path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read(size - self._offset)
        # Only complete lines: a torn or still-being-written last line waits for its newline.
        data = data[: data.rfind(b"\n") + 1]
        if self._ingest(data, self._offset):
            self._new.set()
        self._offset += len(data)

    def _ingest(self, data: bytes, at: int) -> bool:
        """Take in complete lines read at offset ``at``; True when an entry is new."""
        new = False
        for offset, line in split_lines(data, at):
            record = self._parse(line, offset)
            if record is None:
                continue
            if "done" in record:
                try:
                    self._delivered_now(unpack_text(record["done"]))
                except ValueError:
                    self._set_line_aside(line, offset, "not a delivery record")
                continue
            try:
                entry = JournalEntry.from_document(record)
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                self._set_line_aside(line, offset, f"{type(exc).__name__}: {exc}")
                continue
            new = self._admit(entry)[1] or new
        return new

    def _parse(self, line: bytes, offset: int) -> dict[str, Any] | None:
        try:
            record = on_fresh_stack(json.loads, line)  # a line of an older journal may nest
            if isinstance(record, dict):
                return record
        except ValueError:
            pass
        self._set_line_aside(line, offset, "not a JSON record")
        # A journal written before torn lines were cut off may hold an acknowledged record
        # glued onto an unfinished one: recover it, loudly.
        for start in _record_starts(line):
            try:
                record = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(record, dict):
                _log.error(
                    "payment journal %s: a record at byte %d, glued onto the unreadable line "
                    "at byte %d, is recovered",
                    self._entries_path,
                    offset + start,
                    offset,
                )
                return record
        return None

    def _set_line_aside(self, line: bytes, offset: int, why: str) -> None:
        _log.error(
            "payment journal %s: unreadable line at byte %d (%d bytes; %s): not delivered, "
            "moved to %s by the next compaction",
            self._entries_path,
            offset,
            len(line),
            why,
            self._unreadable_path.name,
        )
        self.unreadable += 1
        self._set_aside.append((offset, line))

    def _admit(self, entry: JournalEntry) -> tuple[JournalEntry, bool]:
        known = self._known(entry)
        if known is not None:
            return known, False
        prid = entry.payment_request_id
        stored = entry.with_id(str(self._seq))
        self._seq += 1
        self._entries[prid] = stored
        self._note_paid(entry.payment_code, entry.received_at)
        if prid in self._delivered:  # an older journal's delivered.log
            self._history.append(prid)
        else:
            self._queue.append(prid)
        return stored, True

    def _delivered_now(self, prid: str) -> None:
        if prid in self._delivered or prid in self._gone:
            return
        self._delivered.add(prid)
        if prid in self._entries:
            self._history.append(prid)
            self._stub_of(prid)

    def _note_paid(self, code: str, at: float) -> None:
        latest = self._paid.get(code)
        if latest is None:
            self._paid[code] = at
        elif at > latest:  # to the end: the front stays the oldest
            del self._paid[code]
            self._paid[code] = at

    def _prune_paid(self) -> None:
        """Forget VAs whose latest payment is older than ``keep_ids``, from the front; a VA
        whose entry is still held (undelivered that long) is kept, moved to the back."""
        cutoff = self._clock() - self._keep_ids
        expired = list(takewhile(lambda item: item[1] < cutoff, self._paid.items()))
        if not expired:
            return
        held = {entry.payment_code for entry in self._entries.values()}
        for code, at in expired:
            del self._paid[code]
            if code in held:
                self._paid[code] = at

    def _stub_of(self, prid: str) -> bytes:
        """The id stub that stands for a delivered entry once compacted (made once)."""
        stub = self._stubs.get(prid)
        if stub is None:
            entry = self._entries[prid]
            stub = self._stubs[prid] = _stub(prid, entry.received_at, entry.payment_code)
        return stub

    def _load_ids(self) -> None:
        try:
            data = self._ids_path.read_bytes()
        except FileNotFoundError:
            return
        cutoff = self._clock() - self._keep_ids
        for offset, line in split_lines(data, 0):
            self._ids_lines += 1
            try:
                record = json.loads(line)
                prid, code = unpack_text(record["gone"]), unpack_text(record["code"])
                at = float(record["at"])
            except (ValueError, KeyError, TypeError):
                _log.error("payment journal %s: unreadable line at byte %d", self._ids_path, offset)
                self.unreadable += 1
                continue
            if at >= cutoff:
                self._gone[prid] = (at, code)
                self._note_paid(code, at)

    def _load_legacy_delivered(self) -> None:
        # Raw ids, one a line, as journals before JSON delivery records kept them.
        try:
            data = self._legacy_delivered_path.read_bytes()
        except FileNotFoundError:
            return
        for line in data.split(b"\n"):
            if line.strip():
                self._delivered.add(line.decode("utf-8", "surrogateescape"))

    # -- delivering -----------------------------------------------------------------------------

    def _is_handled(self, prid: str) -> bool:
        return (
            prid in self._handled
            or prid in self._delivered
            or prid in self._gone
            or prid not in self._entries
        )

    def _pending(self) -> Iterator[JournalEntry]:
        queue = self._queue
        while queue and self._is_handled(queue[0]):
            queue.popleft()
        return (self._entries[prid] for prid in queue if not self._is_handled(prid))

    async def read(self, shard: int, timeout: float, limit: int = LEASE) -> Lease | None:
        self._follow()
        self._reload_dead()
        pending = list(islice(self._pending(), limit))
        if pending:
            return Lease(0, pending)
        self._new.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._new.wait()
        except TimeoutError:
            pass
        return Lease(0, ())

    async def done(self, shard: int, entry: JournalEntry) -> None:
        self._handled.add(entry.payment_request_id)
        if self._compaction_due():
            self._kick()

    async def is_delivered(self, payment_request_id: str) -> bool:
        return payment_request_id in self._delivered or payment_request_id in self._gone

    async def has_payment(self, payment_code: str) -> bool:
        self._follow()
        return payment_code in self._paid

    async def lock(self, payment_request_id: str, ttl: float) -> bool:
        if payment_request_id in self._locks:
            return False
        self._locks.add(payment_request_id)
        return True

    async def unlock(self, payment_request_id: str) -> None:
        self._locks.discard(payment_request_id)

    # -- compaction -----------------------------------------------------------------------------

    def _compaction_due(self) -> bool:
        """Whether the delivered entries held are to be compacted now: while appends are
        queued, only once they have grown to twice the usual size (a compaction's switch still
        holds the writer for a few fsyncs)."""
        limit = 2 * self._keep + _SLACK
        if len(self._history) <= (2 * limit if self._writes else limit):
            return False
        if self._release is not None and not self._release.done():
            return False  # the last one's entries are still being let go
        return self._clock() >= self._compact_after

    async def _prepare(self) -> _Prepared | None:
        """A compaction's first step, beside the writer: the compacted entries' ids go to
        ids.jsonl (so at no moment is a delivered paymentRequestId forgotten), and the entries
        still held to a side file, synced. None when it could not (logged; tried again later)."""
        now = self._clock()
        going = list(islice(self._history, len(self._history) - self._keep))
        gone_now = set(going)
        stubs = b"".join(self._stub_of(p) for p in going)
        cutoff = now - self._keep_ids
        while self._gone and next(iter(self._gone.values()))[0] < cutoff:
            self._gone.popitem(last=False)
        rewrite_ids = self._ids_lines + len(going) > 2 * (len(self._gone) + len(going)) + 1024
        ids = stubs
        if rewrite_ids:
            ids = b"".join(_stub(p, at, code) for p, (at, code) in self._gone.items()) + stubs
        kept = b"".join(self._lines_of(p, e) for p, e in self._entries.items() if p not in gone_now)
        aside = b"".join(
            encode_line({"offset": offset, "line": line.decode("utf-8", "backslashreplace")})
            + b"\n"
            for offset, line in self._set_aside
        )
        # What kept stands for: payments.jsonl as taken in up to here; lines appended after it
        # are carried over by the switch.
        prepared = _Prepared(going, len(self._set_aside), len(kept), self._offset, self._identity)
        try:
            if not await self._in_thread(self._prepare_files, kept, ids, rewrite_ids, aside):
                return None  # another process is compacting this directory
        except OSError as exc:
            _log.warning("payment journal %s not compacted: %s", self._entries_path, exc)
            self._compact_after = now + _RETRY_COMPACTION
            return None
        self._ids_lines = (
            (len(self._gone) + len(going)) if rewrite_ids else self._ids_lines + len(going)
        )
        return prepared

    def _prepare_files(self, kept: bytes, ids: bytes, rewrite_ids: bool, aside: bytes) -> bool:
        # The side file is this compaction's until the switch: another process (the CLI) that
        # compacts the same directory meanwhile skips its turn.
        fd = os.open(self._compact_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            with locked(self._lock_path, exclusive=True):
                if rewrite_ids:
                    replace_file(self._ids_path, ids, fsync=self._fsync)
                elif ids:
                    append_whole(self._ids_path, ids, offset=None, identity=None, fsync=self._fsync)
                if aside:
                    append_whole(
                        self._unreadable_path, aside, offset=None, identity=None, fsync=self._fsync
                    )
            # Without the journal's lock: appends go on while the kept entries are synced.
            write_synced(self._side_path, kept, fsync=self._fsync)
        except BaseException:
            os.close(fd)
            raise
        self._compact_fd = fd
        return True

    def _switched(self, prepared: _Prepared, done: Future[_Compacted | None]) -> None:
        """The compaction's last step done, in the writer's turn: payments.jsonl is now the side
        file plus the lines appended since it was made; the compacted entries are let go."""
        self._busy = self._committing = False
        try:
            switched = done.result()
        except Exception as exc:
            _log.warning("payment journal %s not compacted: %s", self._entries_path, exc)
            self._compact_after = self._clock() + _RETRY_COMPACTION
            self._kick()
            return
        if switched is None:
            # Rewritten by another process meanwhile: nothing switched, nothing lost; this
            # process takes the new file in with its next append, and compacts later.
            _log.info("payment journal %s changed during a compaction; later", self._entries_path)
            self._compact_after = self._clock() + _RETRY_COMPACTION
            self._kick()
            return
        del self._set_aside[: prepared.set_aside]
        self._identity, self._offset = switched.identity, switched.end
        if self._ingest(switched.unread, switched.unread_at):
            self._new.set()
        # The compacted entries are let go of beside the writer, a slice per turn of the loop:
        # all at once, thousands of them held every notification in flight for about 10 ms.
        # Meanwhile they are still held (a duplicate finds them; they are delivered, so no
        # read returns them), and no compaction starts before they are gone.
        self._release = asyncio.get_running_loop().create_task(
            self._let_go(prepared.going), name="payment-journal-release"
        )
        self._kick()

    async def _let_go(self, going: list[str]) -> None:
        """Drop the entries a compaction switched out (the oldest of ``_history``) from memory,
        ``_RELEASE_STEP`` per turn of the event loop; then prune the VAs paid too long ago."""
        for start in range(0, len(going), _RELEASE_STEP):
            if start:
                await asyncio.sleep(0)
            for prid in going[start : start + _RELEASE_STEP]:
                entry = self._entries.pop(prid)
                self._lines.pop(prid, None)
                self._stubs.pop(prid, None)
                self._gone[prid] = (entry.received_at, entry.payment_code)
                self._history.popleft()
        await asyncio.sleep(0)
        # Their delivery marks go once, with those of entries no longer held (another
        # process's, an older journal's); meanwhile a mark of an entry let go says the same
        # as its id in _gone.
        self._delivered &= self._entries.keys()
        self._handled &= self._entries.keys()
        self._prune_paid()

    def _lines_of(self, prid: str, entry: JournalEntry) -> bytes:
        line = self._lines.get(prid) or entry.encode() + b"\n"
        if prid in self._delivered:
            line += _done(prid)
        return line

    def _switch_files(self, prepared: _Prepared, taken: int) -> _Compacted | None:
        try:
            with locked(self._lock_path, exclusive=True):
                found = identity_of(self._entries_path)
                if found is None or found[0] != prepared.identity or found[1] < prepared.offset:
                    self._side_path.unlink(missing_ok=True)
                    return None
                with self._entries_path.open("rb") as handle:
                    handle.seek(prepared.offset)
                    tail = handle.read(found[1] - prepared.offset)
                # A torn last line was never acknowledged: it is not carried over.
                tail = tail[: tail.rfind(b"\n") + 1]
                identity = append_synced(self._side_path, tail, fsync=self._fsync)
                os.replace(self._side_path, self._entries_path)
                fsync_dir(self.directory)
                # Its delivery records are in payments.jsonl now.
                self._legacy_delivered_path.unlink(missing_ok=True)
        finally:
            fd, self._compact_fd = self._compact_fd, None
            if fd is not None:
                os.close(fd)  # releases the compaction lock
        # The lines after what this process had taken in (another process appended them).
        read = taken - prepared.offset
        return _Compacted(tail[read:], prepared.kept + read, prepared.kept + len(tail), identity)

    # -- dead letters ---------------------------------------------------------------------------

    def _reload_dead(self) -> None:
        change = self._dead.load()
        if change is None:
            return
        revived, parked = change
        # A replayed dead letter (taken out of the file, by the CLI) is deliverable again.
        for prid in revived:
            self._handled.discard(prid)
            if prid in self._entries and prid not in self._delivered:
                self._queue.append(prid)
                self._new.set()
        self._handled |= parked

    async def dead_letter(self, entry: JournalEntry, error: str, attempts: int) -> None:
        await self._dead.park(entry, error, attempts)
        self._reload_dead()

    async def dead_letters(self) -> list[DeadLetter]:
        self._reload_dead()
        return list(self._dead.letters.values())

    async def replay(self, dead_id: str) -> bool:
        replayed = await self._dead.replay(dead_id)
        self._reload_dead()
        return replayed

    # -- looking in -----------------------------------------------------------------------------

    async def backlog(self) -> tuple[int, float | None]:
        self._follow()
        self._reload_dead()
        count, oldest = 0, None
        for entry in self._pending():
            count += 1
            if oldest is None or entry.received_at < oldest:
                oldest = entry.received_at
        return count, oldest

    async def entries(
        self, *, since: float | None = None, va: str | None = None, limit: int = 100
    ) -> list[JournalEntry]:
        self._follow()
        code = None if va is None else va.replace(" ", "")
        found = (
            entry
            for entry in self._entries.values()
            if (since is None or entry.received_at >= since)
            and (code is None or entry.payment_code == code)
        )
        return list(islice(found, max(limit, 0)))

    async def find(self, payment_request_id: str) -> JournalEntry | None:
        self._follow()
        return self._entries.get(payment_request_id)

    async def close(self) -> None:
        # Whatever is queued is written (and answered), and a compaction under way finished,
        # before the journal goes.
        while True:
            if self._busy or self._writes:
                await self._idle.wait()
            elif self._compaction is not None:
                await asyncio.wait([self._compaction])
                self._kick()  # (its callback may not have run yet)
            elif self._release is not None and not self._release.done():
                await asyncio.shield(self._release)
            else:
                break
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)  # idle: every job it ran has been awaited
        self._held.close()  # (opened again by an append after this)


def _record_starts(line: bytes) -> Iterator[int]:
    for marker in _RECORD_STARTS:
        start = line.find(marker, 1)
        while start > 0:
            yield start
            start = line.find(marker, start + 1)


def _plain(text: str) -> bool:
    """Whether ``text`` is its own JSON string body: printable ASCII, no quote or backslash
    (DOKU's identifiers, in practice)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


# A stub and a delivery record are made for every payment delivered: for plain identifiers
# they are formatted directly (the delivery record at a sixth of the general encoder's cost);
# they read back as the same record (tested), and a clock's time as the same bytes.
def _stub(prid: str, at: float, code: str) -> bytes:
    if _plain(prid) and _plain(code) and math.isfinite(at):
        return f'{{"gone":"{prid}","code":"{code}","at":{at!r}}}\n'.encode("ascii")
    return encode_line({"gone": pack_text(prid), "code": pack_text(code), "at": at}) + b"\n"


def _done(prid: str) -> bytes:
    if _plain(prid):
        return f'{{"done":"{prid}"}}\n'.encode("ascii")
    return encode_line({"done": pack_text(prid)}) + b"\n"
