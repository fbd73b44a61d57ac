"""The inquiry ledger interface and its entry: a VA answered with a payable bill, and when.

The newest inquiry of a VA wins: a record older (by ``answered_at``) than the stored one is
ignored, so the reconciler noting a check cannot undo an inquiry the gateway recorded meanwhile."""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..._json import dumps_ascii
from ...snap.models import Bill, Inquiry


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A VA answered with a payable bill. VA strings are verbatim from DOKU's inquiry.

    ``checked_at`` is when the reconciler last found it unpaid (``None``: never asked), so that
    it asks again only after a growing wait.
    """

    payment_code: str
    partner_service_id: str
    customer_no: str
    virtual_account_no: str
    inquiry_request_id: str
    trx_id: str | None
    answered_at: float
    channel: str | None = None
    checked_at: float | None = None

    @classmethod
    def from_inquiry(cls, inquiry: Inquiry, bill: Bill, answered_at: float) -> LedgerEntry:
        """The entry for ``inquiry`` answered with ``bill`` at POSIX time ``answered_at``."""
        return cls(
            inquiry.payment_code,
            inquiry.partner_service_id,
            inquiry.customer_no,
            inquiry.virtual_account_no,
            inquiry.inquiry_request_id,
            bill.trx_id,
            answered_at,
            inquiry.channel,
        )

    def encode(self) -> bytes:
        document: dict[str, Any] = {
            "code": self.payment_code,
            "psid": self.partner_service_id,
            "cust": self.customer_no,
            "va": self.virtual_account_no,
            "inq": self.inquiry_request_id,
            "trx": self.trx_id,
            "at": self.answered_at,
        }
        if self.channel is not None:
            document["channel"] = self.channel
        if self.checked_at is not None:
            document["checked"] = self.checked_at
        # ASCII escapes: any string DOKU echoes (a lone surrogate included) encodes, so one odd
        # inquiryRequestId cannot cost the entries written with it.
        return dumps_ascii(document)

    @classmethod
    def decode(cls, data: bytes | str) -> LedgerEntry:
        return _from_document(json.loads(data))


def _from_document(document: Mapping[str, Any]) -> LedgerEntry:
    checked = document.get("checked")
    return LedgerEntry(
        document["code"],
        document["psid"],
        document["cust"],
        document["va"],
        document["inq"],
        document.get("trx"),
        float(document["at"]),
        document.get("channel"),
        None if checked is None else float(checked),
    )


def _order(entry: LedgerEntry) -> tuple[float, str]:
    # Ties by payment code: the order Redis gives members of equal score.
    return entry.answered_at, entry.payment_code


class InquiryLedger(ABC):
    """Where reconciliation finds the VAs answered with a bill but never paid."""

    def __init__(self) -> None:
        self._noting: set[asyncio.Task[None]] = set()

    @abstractmethod
    async def record(self, entry: LedgerEntry) -> None:
        """Note that ``entry``'s VA was answered with a bill; never raises (a hint)."""
        ...

    def note(self, entry: LedgerEntry) -> None:
        """:meth:`record` without waiting for it: the inquiry's answer must not wait for a
        hint. Backends that can queue the write cheaply override this."""
        task = asyncio.get_running_loop().create_task(self.record(entry))
        self._noting.add(task)
        task.add_done_callback(self._noting.discard)

    @abstractmethod
    async def due(self, older_than: float, newer_than: float, limit: int) -> list[LedgerEntry]:
        """Entries with ``newer_than <= answered_at <= older_than`` (POSIX), oldest first."""
        ...

    @abstractmethod
    async def settle(self, payment_code: str) -> None:
        """Forget the VA (its payment is journaled, or it is no longer worth asking about)."""
        ...

    def forget(self, payment_code: str) -> None:
        """:meth:`settle` without waiting for it: a payment's ack must not wait for a hint (a
        settle lost in a crash only means `reconcile` asks DOKU about the VA once more)."""
        task = asyncio.get_running_loop().create_task(self.settle(payment_code))
        self._noting.add(task)
        task.add_done_callback(self._noting.discard)

    @abstractmethod
    async def close(self) -> None: ...
