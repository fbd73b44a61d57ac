"""``dead.jsonl`` of the embedded journal: dead letters, appended by the gateway's deliverer and
rewritten by ``doku-gateway payments replay`` (another process), both under the journal's lock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from ...log import get_logger
from ._files import Fsync, append_whole, locked, replace_file, split_lines
from .base import DeadLetter, JournalEntry, encode_line

__all__ = ["DeadLetterFile"]

_log = get_logger("journal")


class DeadLetterFile:
    """The dead letters in ``path``, re-read whenever the file changed."""

    def __init__(
        self, path: Path, lock_path: Path, fsync: Fsync, clock: Callable[[], float]
    ) -> None:
        self.path = path
        self._lock_path = lock_path
        self._fsync = fsync
        self._clock = clock
        self._stamp: tuple[int, int, int] | None = None
        self.letters: dict[str, DeadLetter] = {}

    def load(self) -> tuple[set[str], set[str]] | None:
        """Re-read the file if it changed: (paymentRequestIds no longer parked, those parked
        now), or None when it did not change."""
        try:
            stat = self.path.stat()
            stamp: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            data = b"" if stamp == self._stamp else self.path.read_bytes()
        except FileNotFoundError:
            stamp, data = None, b""
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        letters: dict[str, DeadLetter] = {}
        for offset, line in split_lines(data, 0):
            try:
                record = json.loads(line)
                letter = DeadLetter(
                    record["id"],
                    JournalEntry.from_document(record["entry"]),
                    record["error"],
                    record["attempts"],
                    record["at"],
                )
            except (ValueError, KeyError, TypeError, RecursionError):
                _log.error("payment journal %s: unreadable line at byte %d", self.path, offset)
                continue
            letters[letter.dead_id] = letter
        before = {letter.entry.payment_request_id for letter in self.letters.values()}
        now = {letter.entry.payment_request_id for letter in letters.values()}
        self.letters = letters
        return before - now, now

    async def park(self, entry: JournalEntry, error: str, attempts: int) -> None:
        record = {
            "id": f"{entry.entry_id or 'entry'}-{int(self._clock() * 1000)}",
            "entry": entry.document(),
            "error": error,
            "attempts": attempts,
            "at": self._clock(),
        }
        await asyncio.to_thread(self._append, encode_line(record) + b"\n")

    def _append(self, line: bytes) -> None:
        with locked(self._lock_path, exclusive=True):
            append_whole(self.path, line, offset=None, identity=None, fsync=self._fsync)

    async def replay(self, dead_id: str) -> bool:
        """Take ``dead_id`` out of the file; False when there is no such dead letter."""
        return await asyncio.to_thread(self._remove, dead_id)

    def _remove(self, dead_id: str) -> bool:
        with locked(self._lock_path, exclusive=True):
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return False
            kept, found = [], False
            for _, line in split_lines(data, 0):
                if _dead_id(line) == dead_id:
                    found = True
                else:
                    kept.append(line + b"\n")  # an unreadable line stays for an operator
            if found:
                replace_file(self.path, b"".join(kept), fsync=self._fsync)
        return found


def _dead_id(line: bytes) -> object:
    try:
        return json.loads(line).get("id")
    except (ValueError, AttributeError):
        return None
