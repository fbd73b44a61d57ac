"""The embedded payment journal: fsync'd JSON lines in one directory, for one process."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from ...log import get_logger
from .base import DeadLetter, Journal, JournalEntry, Lease

_log = get_logger("journal")


def _fsync_append(path: Path, data: bytes) -> None:
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        # A new file's name lives in its directory: without this, a power cut can lose the
        # first payment ever acknowledged along with the file.
        _fsync_dir(path.parent)


def _fsync_replace(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_lines(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    # A crash mid-write can leave a torn last line (never acknowledged): ignore it.
    return [line for line in lines if line.strip()]


class FileJournal(Journal):
    """Embedded journal: ``payments.jsonl`` (entries), ``delivered.log``, ``dead.jsonl``.

    Every append is written and fsync'd (in a worker thread, so the event loop keeps serving)
    before it returns. One gateway process per directory.
    """

    shards = 1

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._entries_path = self.directory / "payments.jsonl"
        self._delivered_path = self.directory / "delivered.log"
        self._dead_path = self.directory / "dead.jsonl"
        self._lock = asyncio.Lock()
        self._new = asyncio.Event()
        self._entries: dict[str, JournalEntry] = {}
        self._order: list[str] = []
        self._paid_codes: set[str] = set()
        # Bytes of payments.jsonl already taken in. Lines appended later, by this process or by
        # another (`doku-gateway reconcile`), are picked up by _follow(); duplicates by id are
        # skipped, the first line of a paymentRequestId wins.
        self._offset = 0
        self._follow()
        self._delivered = {line.decode() for line in _read_lines(self._delivered_path)}
        self._handled: set[str] = set(self._delivered)
        self._dead_mtime = -1.0
        self._dead: dict[str, DeadLetter] = {}
        self._reload_dead()
        self._locks: set[str] = set()

    def _reload_dead(self) -> None:
        try:
            mtime = self._dead_path.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        if mtime == self._dead_mtime:
            return
        self._dead_mtime = mtime
        dead: dict[str, DeadLetter] = {}
        for line in _read_lines(self._dead_path):
            document = json.loads(line)
            entry = JournalEntry.decode(json.dumps(document["entry"]))
            dead[document["id"]] = DeadLetter(
                document["id"], entry, document["error"], document["attempts"], document["at"]
            )
        # A replayed dead letter (removed from the file by the CLI) becomes deliverable again.
        revived = {d.entry.payment_request_id for d in self._dead.values()} - {
            d.entry.payment_request_id for d in dead.values()
        }
        self._handled -= revived
        self._handled |= {d.entry.payment_request_id for d in dead.values()}
        self._dead = dead
        if revived:
            self._new.set()

    async def append(self, entry: JournalEntry) -> tuple[JournalEntry, bool]:
        async with self._lock:
            self._follow()  # another process (reconcile) may have journaled it already
            existing = self._entries.get(entry.payment_request_id)
            if existing is not None:
                return existing, False
            await asyncio.to_thread(_fsync_append, self._entries_path, entry.encode() + b"\n")
            stored = JournalEntry(
                entry.payment_request_id,
                entry.payment_code,
                entry.partner_prefix,
                entry.body,
                entry.received_at,
                str(len(self._order)),
            )
            self._entries[entry.payment_request_id] = stored
            self._order.append(entry.payment_request_id)
            self._paid_codes.add(entry.payment_code)
        self._new.set()
        return stored, True

    def _follow(self) -> None:
        try:
            size = self._entries_path.stat().st_size
        except FileNotFoundError:
            return
        if size <= self._offset:
            return
        with self._entries_path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read(size - self._offset)
        # Only complete lines: a torn or still-being-written last line waits for its newline.
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].split(b"\n"):
            if not line.strip():
                continue
            try:
                entry = JournalEntry.decode(line, str(len(self._order)))
            except (ValueError, KeyError):
                _log.error("a payment journal line is unreadable; skipped")
                continue
            if entry.payment_request_id not in self._entries:
                self._entries[entry.payment_request_id] = entry
                self._order.append(entry.payment_request_id)
                self._paid_codes.add(entry.payment_code)

    async def read(self, shard: int, timeout: float) -> Lease | None:
        self._follow()
        self._reload_dead()
        pending = [self._entries[p] for p in self._order if p not in self._handled]
        if pending:
            return Lease(0, pending[:64])
        self._new.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._new.wait()
        except TimeoutError:
            pass
        return Lease(0, ())

    async def done(self, shard: int, entry: JournalEntry) -> None:
        self._handled.add(entry.payment_request_id)

    async def is_delivered(self, payment_request_id: str) -> bool:
        return payment_request_id in self._delivered

    async def has_payment(self, payment_code: str) -> bool:
        self._follow()
        return payment_code in self._paid_codes

    async def mark_delivered(self, payment_request_id: str) -> None:
        if payment_request_id in self._delivered:
            return
        await asyncio.to_thread(
            _fsync_append, self._delivered_path, payment_request_id.encode() + b"\n"
        )
        self._delivered.add(payment_request_id)

    async def lock(self, payment_request_id: str, ttl: float) -> bool:
        if payment_request_id in self._locks:
            return False
        self._locks.add(payment_request_id)
        return True

    async def unlock(self, payment_request_id: str) -> None:
        self._locks.discard(payment_request_id)

    async def dead_letter(self, entry: JournalEntry, error: str, attempts: int) -> None:
        dead_id = f"{entry.entry_id or entry.payment_request_id}-{int(time.time() * 1000)}"
        record = {
            "id": dead_id,
            "entry": json.loads(entry.encode()),
            "error": error,
            "attempts": attempts,
            "at": time.time(),
        }
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        await asyncio.to_thread(_fsync_append, self._dead_path, line)
        self._reload_dead()

    async def dead_letters(self) -> list[DeadLetter]:
        self._reload_dead()
        return list(self._dead.values())

    async def replay(self, dead_id: str) -> bool:
        self._reload_dead()
        if dead_id not in self._dead:
            return False
        keep = [line for line in _read_lines(self._dead_path) if json.loads(line)["id"] != dead_id]
        await asyncio.to_thread(
            _fsync_replace, self._dead_path, b"".join(line + b"\n" for line in keep)
        )
        self._reload_dead()
        return True

    async def backlog(self) -> tuple[int, float | None]:
        self._follow()
        self._reload_dead()
        pending = [self._entries[p] for p in self._order if p not in self._handled]
        return len(pending), min((e.received_at for e in pending), default=None)

    async def entries(
        self, *, since: float | None = None, va: str | None = None, limit: int = 100
    ) -> list[JournalEntry]:
        self._follow()
        code = None if va is None else va.replace(" ", "")
        found: list[JournalEntry] = []
        for prid in self._order:
            if len(found) >= limit:
                break
            entry = self._entries[prid]
            if since is not None and entry.received_at < since:
                continue
            if code is not None and entry.payment_code != code:
                continue
            found.append(entry)
        return found

    async def find(self, payment_request_id: str) -> JournalEntry | None:
        self._follow()
        return self._entries.get(payment_request_id)

    async def close(self) -> None:
        return None
