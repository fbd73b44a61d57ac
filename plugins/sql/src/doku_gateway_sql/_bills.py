"""One result row → :class:`~gateway.Bill` or :class:`~gateway.BillStatus`.

The query names its columns after the bill's fields (``SELECT total AS amount …``); see
:data:`COLUMNS`. Every problem is a ``ValueError`` naming the column, so the log says what to
fix in the query or the data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from gateway import Bill, BillStatus, FreeText, Outcome, ResolverError, TrxType, validate_bill

__all__ = ["COLUMNS", "bill_from_row"]

#: Column name → what it means. Only ``name`` is needed (and ``amount`` for a closed bill).
COLUMNS: dict[str, str] = {
    "name": "shown to the payer; required unless the row is paid or expired",
    "amount": "the bill's amount (exact for C); NUMERIC/DECIMAL, an integer or a string",
    "trx_type": "'C' closed (default), 'O' open, 'V'",
    "min_amount": "lowest amount the payer may key (O/V only)",
    "max_amount": "highest amount the payer may key (O/V only)",
    "expires_at": "when the bill expires: a timestamp with or without zone, or ISO-8601 text",
    "paid": "true: answer 'already paid' instead of the bill",
    "expired": "true: answer 'expired' instead of the bill",
    "reusable": "true for a VA that can be paid again and again (DOKU's reusableStatus)",
    "trx_id": "your invoice number (up to 64 characters), sent back to DOKU",
    "email": "the payer's e-mail address",
    "phone": "the payer's phone number, 9-30 digits",
    "free_text_english": "one extra line for the ATM screen, English",
    "free_text_indonesia": "the same line in Indonesian",
    "currency": "must be 'IDR' when given",
    "cache_ttl": "seconds the gateway may reuse this answer (0: not at all)",
}

_MONEY = re.compile(r"\d{1,16}(?:\.\d{1,2})?", re.ASCII)
_TRX_TYPES: tuple[TrxType, ...] = ("C", "O", "V")


def bill_from_row(row: Mapping[str, Any], zone: tzinfo) -> Outcome:
    """Map one row; naive timestamps are read in ``zone`` and every expiry is shown in it."""
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise ValueError(
            f"column {unknown[0]!r} is not a bill field (alias it to one of: {', '.join(COLUMNS)})"
        )
    if _flag(row, "paid"):
        return BillStatus.ALREADY_PAID
    if _flag(row, "expired"):
        return BillStatus.EXPIRED
    name = _text(row, "name")
    if name is None:
        raise ValueError("column 'name' is required (NULL or missing)")
    trx_type = _trx_type(row)
    amount = _money(row, "amount")
    if amount is None:
        if trx_type == "C":
            raise ValueError("column 'amount' is required for a closed bill (trx_type 'C')")
        amount = Decimal("0.00")
    english = _text(row, "free_text_english")
    indonesia = _text(row, "free_text_indonesia")
    free_text: tuple[FreeText, ...] = ()
    if english is not None or indonesia is not None:
        # One language given: show it in both, DOKU wants the pair.
        free_text = (FreeText(english or indonesia or "", indonesia or english or ""),)
    reusable = _flag(row, "reusable") if row.get("reusable") is not None else None
    bill = Bill(
        name=name,
        amount=amount,
        trx_type=trx_type,
        min_amount=_money(row, "min_amount"),
        max_amount=_money(row, "max_amount"),
        expires_at=_moment(row, "expires_at", zone),
        trx_id=_text(row, "trx_id"),
        email=_text(row, "email"),
        phone=_text(row, "phone"),
        free_text=free_text,
        reusable=reusable,
        currency=_text(row, "currency") or "IDR",
        cache_ttl=_seconds(row, "cache_ttl"),
    )
    try:
        validate_bill(bill)
    except ResolverError as exc:
        raise ValueError(str(exc)) from None
    return bill


def _text(row: Mapping[str, Any], column: str) -> str | None:
    value = row.get(column)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"column {column!r} must be text, not {type(value).__name__}")
    return value


def _trx_type(row: Mapping[str, Any]) -> TrxType:
    value = _text(row, "trx_type")
    if value is None:
        return "C"
    for known in _TRX_TYPES:
        if value == known:
            return known
    raise ValueError("column 'trx_type' must be 'C', 'O' or 'V'")


def _flag(row: Mapping[str, Any], column: str) -> bool:
    value = row.get(column)
    if value is None:
        return False
    # MySQL has no boolean type: BOOLEAN is TINYINT(1) and arrives as 0 or 1.
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    raise ValueError(f"column {column!r} must be a boolean (or 0/1), not {value!r}")


def _money(row: Mapping[str, Any], column: str) -> Decimal | None:
    value = row.get(column)
    if value is None:
        return None
    if isinstance(value, float):
        # A FLOAT/DOUBLE column has already rounded the amount; the payer must see it exact.
        raise ValueError(
            f"column {column!r} is a floating-point number; store money as NUMERIC/DECIMAL"
        )
    if isinstance(value, bool):
        raise ValueError(f"column {column!r} must be an amount, not a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str) and _MONEY.fullmatch(value) is not None:
        return Decimal(value)
    raise ValueError(f"column {column!r} must be NUMERIC/DECIMAL, an integer or '25000.00' text")


def _moment(row: Mapping[str, Any], column: str, zone: tzinfo) -> datetime | None:
    value = row.get(column)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"column {column!r} is not an ISO-8601 timestamp") from None
    if not isinstance(value, datetime):
        kind = "a date without a time" if isinstance(value, date) else type(value).__name__
        raise ValueError(f"column {column!r} must be a timestamp, not {kind}")
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    return value.astimezone(zone)


def _seconds(row: Mapping[str, Any], column: str) -> float | None:
    value = row.get(column)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"column {column!r} must be a number of seconds")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"column {column!r} must be a non-negative number of seconds")
    return seconds
