"""The inquiry ledger: which VAs were answered with a payable bill, and when.

Reconciliation (:mod:`gateway.payments.reconcile`) asks DOKU's Check Status about VAs answered a
while ago with no payment journaled. The ledger is a hint, not a record of money: losing its
last lines only means those VAs are not reconciled. So :class:`FileLedger` does not fsync
appends, and ``record()`` never raises (a failure is logged): it runs on the inquiry path and
must not break an answer.

Two backends, chosen by :func:`create_ledger` like the payment journal is:

* :class:`FileLedger`: JSON lines in ``inquiries.jsonl`` in the payment journal directory. The
  gateway records and the ``reconcile`` command settles, possibly at the same moment, so every
  append is one ``O_APPEND`` write under a shared ``flock`` that a compaction takes exclusively.
* :class:`RedisLedger`: ``{prefix}v1:{pay}:ledger:entries`` (hash, payment code → entry) and
  ``{prefix}v1:{pay}:ledger:answered`` (sorted set by answer time), in the journal's hash tag.

The newest inquiry of a VA wins: a record older (by ``answered_at``) than the stored one is
ignored, so the reconciler noting a check cannot undo an inquiry the gateway recorded meanwhile.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from ..._json import dumps_ascii
from ...log import get_logger, mask_va
from .base import InquiryLedger, LedgerEntry, _from_document, _order

_log = get_logger("ledger")
_T = TypeVar("_T")

#: Seconds a noted entry may wait to be written with the others noted meanwhile.
NOTE_DELAY = 0.05
#: Lines kept waiting while another holds the ledger's lock (a compaction of a day's ledger
#: takes seconds: tens of thousands of lines at a payday's rate); past it they are dropped.
MAX_WAITING_LINES = 200_000


# -- file backend ---------------------------------------------------------------------------------


class FileLedger(InquiryLedger):
    """``inquiries.jsonl`` in ``directory``: one line per record, a tombstone line per settle.

    The file is compacted (rewritten with the live entries only) when most of its lines are dead.
    That is counted when the file has doubled since it was last counted (so the counting costs
    O(1) per append, amortised), or when :meth:`due` reads it anyway; ``compact_min_bytes``
    keeps small files from being counted or rewritten at all.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, compact_min_bytes: int = 1 << 20
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = self.directory / "inquiries.jsonl"
        self._lock_path = self.directory / "inquiries.jsonl.lock"
        self._compact_min_bytes = compact_min_bytes
        self._counted_bytes = 0
        self._tail_checked = False
        self._compaction: asyncio.Task[None] | None = None
        # note() and forget(): lines of the request paths, written together every NOTE_DELAY
        # seconds, with the payment code each concerns (for the log line if they fail).
        self._noted: list[tuple[bytes, str]] = []
        # Lines this process wrote since the file was last counted, and how many of them made a
        # line dead (tombstones, records replacing an entry): whether counting it again could
        # find it mostly dead. Repeated notes of one VA are not counted here; reading the file
        # for `due()` (reconcile) compacts what they leave.
        self._written = 0
        self._dead_written = 0
        self._flush: asyncio.TimerHandle | None = None

    async def record(self, entry: LedgerEntry) -> None:
        self._write_noted()  # keep the file in the order things happened
        # A record rewrites a VA the ledger holds (the reconciler noting a check): the line
        # it replaces is dead.
        self._written += 1
        self._dead_written += 1
        try:
            await self._append(entry.encode() + b"\n")
        except Exception as exc:  # a hint must never fail the inquiry that records it
            self._not_written([entry.payment_code], exc)

    def note(self, entry: LedgerEntry) -> None:
        # Every cache miss notes its bill: one locked append per miss would cost more than the
        # rest of the miss. The ledger is a hint (a crash loses at most NOTE_DELAY seconds of
        # it: those VAs are not reconciled), so notes are written together, off the request.
        self._queue(entry.encode(), entry.payment_code, dead=False)

    def forget(self, payment_code: str) -> None:
        # In the same queue as the notes: a VA's tombstone never lands before its note.
        self._queue(_tombstone(payment_code), payment_code, dead=True)

    def _queue(self, line: bytes, payment_code: str, *, dead: bool) -> None:
        self._noted.append((line, payment_code))
        self._written += 1
        self._dead_written += dead
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(NOTE_DELAY, self._write_noted)

    def _write_noted(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        noted, self._noted = self._noted, []
        if not noted:
            return
        data = b"".join(line + b"\n" for line, _ in noted)
        codes = [code for _, code in noted]
        try:
            self._append_nowait(data)
        except BlockingIOError:
            # A compaction holds the lock (seconds, for a day's ledger): the lines wait here, in
            # order, for the next flush. Not in a thread blocked on the lock: one such thread
            # per flush took the whole default executor, and the payment journal's fsyncs
            # queued behind them (payment p99 of half a second after a burst of misses).
            if len(noted) > MAX_WAITING_LINES:
                # Held far longer than a compaction takes (another process stuck with it):
                # the hints are dropped, logged, rather than kept growing in memory.
                self._not_written(codes, TimeoutError("ledger lock held"))
                return
            self._noted[:0] = noted
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_later(NOTE_DELAY, self._write_noted)
        except Exception as exc:  # a hint must never fail the inquiry that records it
            self._not_written(codes, exc)

    async def _append_later(self, codes: list[str], data: bytes) -> None:
        try:
            await self._append(data)
        except Exception as exc:
            self._not_written(codes, exc)

    def _not_written(self, codes: list[str], exc: BaseException) -> None:
        _log.warning(
            "inquiry ledger %s not written (%s); VA %s%s will not be reconciled",
            self.path,
            type(exc).__name__,
            mask_va(codes[0]),
            f" and {len(codes) - 1} more" if len(codes) > 1 else "",
        )

    async def due(self, older_than: float, newer_than: float, limit: int) -> list[LedgerEntry]:
        self._write_noted()
        live, lines, size = await asyncio.to_thread(_load, self.path)
        if lines - len(live) > len(live) and size >= self._compact_min_bytes:
            self._start_compaction()
        selected = [e for e in live.values() if newer_than <= e.answered_at <= older_than]
        return sorted(selected, key=_order)[: max(limit, 0)]

    async def settle(self, payment_code: str) -> None:
        self._write_noted()  # a note of this VA must not land after its tombstone
        self._written += 1
        self._dead_written += 1
        await self._append(_tombstone(payment_code) + b"\n")

    async def close(self) -> None:
        if self._compaction is not None:
            await self._compaction
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        noted, self._noted = self._noted, []
        if noted:  # waiting for the lock if another process holds it (off the event loop)
            await self._append_later(
                [code for _, code in noted], b"".join(line + b"\n" for line, _ in noted)
            )
        if self._noting:
            await asyncio.gather(*self._noting, return_exceptions=True)

    async def _append(self, data: bytes) -> None:
        try:
            self._append_nowait(data)
        except BlockingIOError:
            # A compaction (here or in another process) holds the lock: wait off the event loop.
            size = await asyncio.to_thread(
                _append_shared,
                self._lock_path,
                self.path,
                data,
                block=True,
                tail=not self._tail_checked,
            )
            self._appended(size)

    def _append_nowait(self, data: bytes) -> None:
        """Append under the shared lock, or raise BlockingIOError if a compaction holds it."""
        size = _append_shared(
            self._lock_path, self.path, data, block=False, tail=not self._tail_checked
        )
        self._appended(size)

    def _appended(self, size: int) -> None:
        self._tail_checked = True
        # Counting a large file holds the interpreter for a while (a thread, but a Python
        # loop: 350 ms for 37 MB, with the event loop waiting for the GIL meanwhile). Only
        # when this process's own writes since the last count make it worth it: a quarter of
        # them settles. A ledger of notes only (VAs answered, none paid yet) is all live.
        if (
            size > max(self._compact_min_bytes, 2 * self._counted_bytes)
            and 4 * self._dead_written >= self._written
        ):
            self._start_compaction()

    def _start_compaction(self) -> None:
        if self._compaction is None:
            self._compaction = asyncio.create_task(self._compact(), name="ledger-compaction")

    async def _compact(self) -> None:
        self._written = self._dead_written = 0
        try:
            self._counted_bytes = await asyncio.to_thread(_compact, self._lock_path, self.path)
        except OSError as exc:
            _log.warning("inquiry ledger %s not compacted: %s", self.path, exc)
        finally:
            self._compaction = None


def _append_shared(lock_path: Path, path: Path, data: bytes, *, block: bool, tail: bool) -> int:
    """Append ``data`` under a shared lock; returns the file's size after it."""
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_SH if block else fcntl.LOCK_SH | fcntl.LOCK_NB)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if tail:
                size = os.fstat(fd).st_size
                # A crash mid-write (of any process) leaves a line without its newline; end it,
                # or this record would be glued to it and lost with it.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
            os.write(fd, data)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)
    finally:
        os.close(lock)  # releases the flock


def _load(path: Path) -> tuple[dict[str, LedgerEntry], int, int]:
    """The live entries, the number of lines and the size of the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, 0, 0
    lines = [line for line in data.split(b"\n") if line.strip()]
    return _fold(lines), len(lines), len(data)


def _fold(lines: Iterable[bytes]) -> dict[str, LedgerEntry]:
    live: dict[str, LedgerEntry] = {}
    for line in lines:
        try:
            document = json.loads(line)
            code = document["code"]
            if document.get("settled"):
                live.pop(code, None)
                continue
            entry = _from_document(document)
        except (ValueError, KeyError, TypeError):
            continue  # a torn line: a lost hint, and a dead line for the next compaction
        current = live.get(code)
        if current is None or entry.answered_at >= current.answered_at:
            live[code] = entry
    return live


def _compact(lock_path: Path, path: Path) -> int:
    """Rewrite ``path`` with its live entries if most lines are dead; returns its size then."""
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return 0
        # Sorted out without parsing each line (the gateway compacts from a thread, and a full
        # parse of a large ledger holds the interpreter from the event loop meanwhile: 35 ms for
        # a megabyte of tombstones); only the lines of the VAs left are parsed. A day's ledger
        # is hundreds of thousands of lines: the loop pauses now and then, so that the event
        # loop keeps most of the interpreter while it runs.
        lines = data.split(b"\n")
        live_lines = _live_lines(_paced(lines, _pause))
        if _count_lines(lines) - len(live_lines) <= len(live_lines):
            return len(data)
        live = _fold(_paced((line for kept in live_lines.values() for line in kept), _pause))
        data = b"".join(
            entry.encode() + b"\n" for entry in _paced(sorted(live.values(), key=_order), _pause)
        )
        temporary = path.with_suffix(".jsonl.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            # Appends are not synced, but a rewrite is: a crash must not leave an empty ledger.
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        return len(data)
    finally:
        os.close(lock)


def _tombstone(payment_code: str) -> bytes:
    return dumps_ascii({"code": payment_code, "settled": True})


_CODE = b'{"code":"'
_SETTLED = b',"settled":true}'


#: Lines a compaction reads between two pauses, and the pause: the thread then holds the
#: interpreter about a millisecond at a time and leaves it to the event loop for five.
_PAUSE_EVERY = 1024
_PAUSE_SECONDS = 0.005


def _pause() -> None:
    time.sleep(_PAUSE_SECONDS)


def _paced(items: Iterable[_T], pause: Callable[[], None]) -> Iterator[_T]:
    """``items``, with ``pause()`` every :data:`_PAUSE_EVERY` of them."""
    for number, item in enumerate(items):
        if number % _PAUSE_EVERY == _PAUSE_EVERY - 1:
            pause()
        yield item


def _count_lines(lines: list[bytes]) -> int:
    """The records among ``lines``: all but the empty ones (the encoder writes no other blank
    line), counted in C rather than line by line."""
    return len(lines) - lines.count(b"")


def _live_lines(lines: Iterable[bytes]) -> dict[bytes, list[bytes]]:
    """Per VA that ``lines`` leave in the ledger, its lines since its last tombstone (their fold
    is the VA's entry), reading only each line's code and whether it is a tombstone (the
    encoder writes ``code`` first); other lines are parsed."""
    live: dict[bytes, list[bytes]] = {}
    for line in lines:
        if not line.endswith(b"}"):
            continue  # torn or blank: the fold skips it too
        if line.startswith(_CODE):
            end = line.find(b'"', len(_CODE))
            code = line[len(_CODE) : end]
            settled = line.endswith(_SETTLED)
        else:
            try:
                document = json.loads(line)
                code = str(document["code"]).encode()
                settled = bool(document.get("settled"))
            except (ValueError, KeyError, TypeError):
                continue
        if settled:
            live.pop(code, None)
        else:
            live.setdefault(code, []).append(line)
    return live
