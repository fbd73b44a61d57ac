"""The journal interface and its values: an entry as first received, a dead letter, a lease.

Entries are idempotent on ``paymentRequestId``: a retried or concurrent duplicate notification
finds the first entry."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One recorded notification: the verified body exactly as first received."""

    payment_request_id: str
    payment_code: str
    partner_prefix: str
    body: Mapping[str, Any]
    received_at: float
    entry_id: str = ""

    def encode(self) -> bytes:
        return json.dumps(
            {
                "prid": self.payment_request_id,
                "code": self.payment_code,
                "partner": self.partner_prefix,
                "body": self.body,
                "at": self.received_at,
            },
            separators=(",", ":"),
            # ASCII escapes: a lone surrogate in a notification must not make it unrecordable.
            ensure_ascii=True,
        ).encode("ascii")

    @classmethod
    def decode(cls, data: bytes | str, entry_id: str = "") -> JournalEntry:
        document = json.loads(data)
        return cls(
            document["prid"],
            document["code"],
            document["partner"],
            document["body"],
            float(document["at"]),
            entry_id,
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry whose delivery kept failing, parked for an operator."""

    dead_id: str
    entry: JournalEntry
    error: str
    attempts: int
    parked_at: float


@dataclass(frozen=True, slots=True)
class Lease:
    """A batch of entries of one shard, to be delivered in order; ``token`` acknowledges."""

    shard: int
    entries: Sequence[JournalEntry]


class Journal(ABC):
    shards: int

    @abstractmethod
    async def append(self, entry: JournalEntry) -> tuple[JournalEntry, bool]:
        """Record ``entry`` durably; returns ``(first entry for its paymentRequestId, is_new)``."""
        ...

    async def keepalive(self, shard: int) -> bool:
        """Renew this process's claim on ``shard`` (many pods share a journal); ``False`` once
        another process owns it. A single-process journal always owns every shard."""
        return True

    @abstractmethod
    async def read(self, shard: int, timeout: float) -> Lease | None:
        """Undelivered entries of ``shard`` in order, waiting up to ``timeout`` for new ones;
        ``None`` when this process does not own the shard right now."""
        ...

    @abstractmethod
    async def done(self, shard: int, entry: JournalEntry) -> None:
        """Mark ``entry`` handled (delivered or dead-lettered): it is not read again."""
        ...

    @abstractmethod
    async def is_delivered(self, payment_request_id: str) -> bool: ...

    @abstractmethod
    async def has_payment(self, payment_code: str) -> bool:
        """Whether any payment of this VA (``virtualAccountNo`` without spaces) is journaled."""
        ...

    @abstractmethod
    async def mark_delivered(self, payment_request_id: str) -> None: ...

    @abstractmethod
    async def lock(self, payment_request_id: str, ttl: float) -> bool:
        """Exclusive right to call the hook for one payment (request path vs. worker, pods)."""
        ...

    @abstractmethod
    async def unlock(self, payment_request_id: str) -> None: ...

    @abstractmethod
    async def dead_letter(self, entry: JournalEntry, error: str, attempts: int) -> None: ...

    @abstractmethod
    async def dead_letters(self) -> list[DeadLetter]: ...

    @abstractmethod
    async def replay(self, dead_id: str) -> bool:
        """Put a dead letter back for delivery; False when there is no such id."""
        ...

    @abstractmethod
    async def backlog(self) -> tuple[int, float | None]:
        """Entries not yet handled (neither delivered nor dead-lettered), and the
        ``received_at`` of the oldest of them (``None`` when there is none)."""
        ...

    @abstractmethod
    async def entries(
        self, *, since: float | None = None, va: str | None = None, limit: int = 100
    ) -> list[JournalEntry]:
        """Entries the journal still holds, oldest first: received at or after ``since``, of
        the VA ``va`` (``virtualAccountNo``, spaces ignored), at most ``limit`` of them.
        Delivered entries past the journal's retention are no longer held."""
        ...

    @abstractmethod
    async def find(self, payment_request_id: str) -> JournalEntry | None:
        """The entry of a paymentRequestId, if the journal still holds it."""
        ...

    @abstractmethod
    async def close(self) -> None: ...
