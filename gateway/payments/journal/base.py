"""The journal interface and its values: an entry as first received, a dead letter, a lease.

Entries are idempotent on ``paymentRequestId``: a retried or concurrent duplicate notification
finds the first entry.

An entry is journaled as one line of ASCII JSON. Identifiers are JSON strings with ``\\uXXXX``
escapes, so a newline or a lone surrogate is written and read back unchanged; the one string JSON
cannot carry (a lone high surrogate right before a lone low one, whose escapes decode as one
character) is written as base64 (:func:`pack_text`). The body is the bytes DOKU sent (``raw``),
as UTF-8 text or, when they are not strict UTF-8, as base64: never re-encoded, so nesting that
the request parser accepted costs the encoder nothing, and the bytes come back exactly."""

from __future__ import annotations

import base64
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ..._json import dumps_ascii, loads

_T = TypeVar("_T")

#: Entries a delivery lease holds by default.
LEASE = 64
_R = TypeVar("_R")

_TEXT_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def on_fresh_stack(function: Callable[[_T], _R], argument: _T) -> _R:
    """``function(argument)``; after a ``RecursionError``, once more on a new thread's empty
    stack. The JSON codec spends one stack frame per level of nesting, so whatever the request
    parser accepted (beneath a whole server's frames) fits there, wherever it is handled now."""
    try:
        return function(argument)
    except RecursionError:
        with ThreadPoolExecutor(1, thread_name_prefix="journal-codec") as pool:
            return pool.submit(function, argument).result()


def encode_line(document: Mapping[str, Any]) -> bytes:
    """One journal line (no newline): compact ASCII JSON, so a record never holds a raw newline
    and any string, lone surrogates included, can be written."""
    return on_fresh_stack(dumps_ascii, document)


def _parse_body(raw: bytes) -> Any:
    return on_fresh_stack(json.loads, body_text(raw))


def body_text(raw: bytes) -> str:
    """The request body as text, decoded as the request parser decodes it (UTF-8, -16 or -32;
    a surrogate encoded on its own is taken as one, not refused)."""
    return raw.decode(json.detect_encoding(raw), "surrogatepass")


def pack_text(text: str) -> str | dict[str, str]:
    """``text`` as a JSON value that reads back as exactly ``text``: itself, unless it holds a
    high surrogate right before a low one (JSON would read their escapes as one character), then
    ``{"b64": …}`` of its code points' bytes."""
    if text.isascii() or _SURROGATE_PAIR.search(text) is None:
        return text
    return {"b64": base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")}


def unpack_text(value: object) -> str:
    """The string :func:`pack_text` wrote; ``ValueError`` for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(packed := value.get("b64"), str):
        return base64.b64decode(packed, validate=True).decode("utf-8", "surrogatepass")
    raise ValueError("not a journaled string")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One recorded notification: the verified body exactly as first received.

    ``raw`` is the body as DOKU sent it; when given, it is what the journal stores (``body`` must
    be its parse). Entries built from other sources (reconciliation) may leave it out: their
    body is journaled as its JSON text."""

    payment_request_id: str
    payment_code: str
    partner_prefix: str
    body: Mapping[str, Any]
    received_at: float
    entry_id: str = ""
    raw: bytes | None = None

    def encode(self) -> bytes:
        return encode_line(self.document())

    def document(self) -> dict[str, Any]:
        """What :meth:`encode` writes, before it is written (:meth:`from_document` reads it)."""
        document: dict[str, Any] = {
            "prid": pack_text(self.payment_request_id),
            "code": pack_text(self.payment_code),
            "partner": pack_text(self.partner_prefix),
            "at": self.received_at,
        }
        raw = self.raw
        if raw is None:  # built here (reconciliation): its own JSON text, any string kept
            text = on_fresh_stack(_TEXT_ENCODER.encode, self.body)
            raw = text.encode("utf-8", "surrogatepass")
        try:
            document["raw"] = raw.decode("utf-8")  # DOKU's bodies: readable in the file
        except UnicodeDecodeError:
            document["raw64"] = base64.b64encode(raw).decode("ascii")
        return document

    @classmethod
    def decode(cls, data: bytes | str, entry_id: str = "") -> JournalEntry:
        document = loads(data, json.loads) if isinstance(data, bytes) else json.loads(data)
        return cls.from_document(document, entry_id)

    @classmethod
    def from_document(cls, document: Mapping[str, Any], entry_id: str = "") -> JournalEntry:
        """From a decoded line: ``raw``/``raw64`` (this format) or ``body`` (lines written
        before it)."""
        raw: bytes | None = None
        if isinstance(text := document.get("raw"), str):
            raw = text.encode("utf-8")
        elif isinstance(packed := document.get("raw64"), str):
            raw = base64.b64decode(packed, validate=True)
        body = document["body"] if raw is None else loads(raw, _parse_body)
        if not isinstance(body, Mapping):
            raise ValueError("a journal entry's body is not a JSON object")
        return cls(
            unpack_text(document["prid"]),
            unpack_text(document["code"]),
            unpack_text(document["partner"]),
            body,
            float(document["at"]),
            entry_id,
            raw,
        )

    def with_id(self, entry_id: str) -> JournalEntry:
        return JournalEntry(
            self.payment_request_id,
            self.payment_code,
            self.partner_prefix,
            self.body,
            self.received_at,
            entry_id,
            self.raw,
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
    #: Journaled entries found unreadable so far (a torn write, a corrupt record); each is
    #: logged as an error with its position, never merged into another entry.
    unreadable: int = 0

    @abstractmethod
    async def append(self, entry: JournalEntry) -> tuple[JournalEntry, bool]:
        """Record ``entry`` durably; returns ``(first entry for its paymentRequestId, is_new)``."""
        ...

    async def keepalive(self, shard: int) -> bool:
        """Renew this process's claim on ``shard`` (many pods share a journal); ``False`` once
        another process owns it. A single-process journal always owns every shard."""
        return True

    @abstractmethod
    async def read(self, shard: int, timeout: float, limit: int = LEASE) -> Lease | None:
        """Up to ``limit`` undelivered entries of ``shard`` in order, waiting up to ``timeout``
        for new ones; ``None`` when this process does not own the shard right now."""
        ...

    @abstractmethod
    async def done(self, shard: int, entry: JournalEntry) -> None:
        """Mark ``entry`` handled (delivered or dead-lettered): it is not read again."""
        ...

    async def done_all(self, shard: int, entries: Sequence[JournalEntry]) -> None:
        """:meth:`done` for each of ``entries`` (a lease's, once delivered): one command where
        the backend can."""
        for entry in entries:
            await self.done(shard, entry)

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

    async def claim_delivery(self, payment_request_id: str, ttl: float) -> bool | None:
        """:meth:`lock`, unless the payment is delivered already: True when taken, False when
        another holds it, None when it is delivered (nothing taken). A backend may do both in
        one step."""
        if not await self.lock(payment_request_id, ttl):
            return False
        if await self.is_delivered(payment_request_id):
            await self.unlock(payment_request_id)
            return None
        return True

    async def record_delivery(self, payment_request_id: str) -> None:
        """:meth:`mark_delivered`, then :meth:`unlock` (one step where a backend can). Raises
        when the record fails; the lock is then still held, for the caller's unlock."""
        await self.mark_delivered(payment_request_id)
        await self.unlock(payment_request_id)

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
