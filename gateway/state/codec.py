"""Compact, versioned encodings of cached outcomes for shared backends (no pickle).

Amounts travel as strings and come back as :class:`~decimal.Decimal`; the format version is part
of every key (``v1``), so a change of format never reads an old entry.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from .._json import dumps_utf8, loads
from ..snap.models import Bill, BillStatus, FreeText, Outcome

_STATUS_BY_VALUE = {status.value: status for status in BillStatus}
_STATUS_ENCODED = {status: dumps_utf8({"s": status.value}) for status in BillStatus}


def encode_outcome(outcome: Outcome) -> bytes:
    if isinstance(outcome, BillStatus):
        return _STATUS_ENCODED[outcome]
    document: dict[str, Any] = {"n": outcome.name, "a": str(outcome.amount), "t": outcome.trx_type}
    optional: dict[str, Any] = {
        "mn": None if outcome.min_amount is None else str(outcome.min_amount),
        "mx": None if outcome.max_amount is None else str(outcome.max_amount),
        "e": None if outcome.expires_at is None else outcome.expires_at.isoformat(),
        "i": outcome.trx_id,
        "em": outcome.email,
        "p": outcome.phone,
        "f": [[line.english, line.indonesia] for line in outcome.free_text] or None,
        "r": outcome.reusable,
        "h": outcome.cache_ttl,
    }
    document.update((key, value) for key, value in optional.items() if value is not None)
    if outcome.currency != "IDR":
        document["c"] = outcome.currency
    return dumps_utf8(document)


def decode_outcome(data: bytes) -> Outcome:
    """Inverse of :func:`encode_outcome`; ``ValueError`` on anything else."""
    try:
        document = loads(data, json.loads)
        if "s" in document:
            return _STATUS_BY_VALUE[document["s"]]
        return Bill(
            name=document["n"],
            amount=Decimal(document["a"]),
            trx_type=document["t"],
            min_amount=_decimal(document.get("mn")),
            max_amount=_decimal(document.get("mx")),
            expires_at=None if "e" not in document else datetime.fromisoformat(document["e"]),
            trx_id=document.get("i"),
            email=document.get("em"),
            phone=document.get("p"),
            free_text=tuple(FreeText(en, idn) for en, idn in document.get("f", ())),
            reusable=document.get("r"),
            currency=document.get("c", "IDR"),
            cache_ttl=document.get("h"),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"undecodable cache entry: {exc}") from None


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


class Decoded:
    """Decoded outcomes by their encoding, bounded: the same few bills are read thousands of
    times (retries, hits), and decoding each byte string once keeps a hit cheap."""

    __slots__ = ("_by_value", "_limit")

    def __init__(self, limit: int = 4096) -> None:
        self._by_value: dict[bytes, Outcome] = {}
        self._limit = limit

    def __call__(self, value: bytes) -> Outcome:
        """The outcome ``value`` encodes; ``ValueError`` when it is not one."""
        outcome = self._by_value.get(value)
        if outcome is None:
            outcome = decode_outcome(value)
            if len(self._by_value) >= self._limit:
                self._by_value.clear()
            self._by_value[bytes(value)] = outcome
        return outcome
