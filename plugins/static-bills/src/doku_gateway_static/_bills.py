"""The bills file: a JSON object of payment code → bill, parsed and checked in one go.

Every problem is a :class:`ValueError` naming the payment code and the field, so the gateway's
config error says exactly which line of the file to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway import Bill, BillStatus, Outcome, ResolverError, validate_bill

__all__ = ["parse_bills"]

# partnerServiceId (up to 8 digits) + customerNo (up to 20): the VA number without spaces.
_PAYMENT_CODE = re.compile(r"\d{1,28}")
_MONEY = re.compile(r"\d{1,16}(?:\.\d{1,2})?")
_TRX_TYPES = ("C", "O", "V")
_STATUSES = {"paid": BillStatus.ALREADY_PAID, "expired": BillStatus.EXPIRED}
_FIELDS = frozenset(
    {
        "name",
        "amount",
        "trx_type",
        "min_amount",
        "max_amount",
        "expires_at",
        "trx_id",
        "email",
        "phone",
        "status",
    }
)


class _FieldError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


def parse_bills(raw: bytes | str) -> dict[str, Outcome]:
    """Parse the file's content; ``ValueError`` naming the payment code and field on a problem."""
    try:
        document = json.loads(raw, object_pairs_hook=_unique_keys)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and duplicate keys
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("must be a JSON object mapping payment codes to bills")
    bills: dict[str, Outcome] = {}
    for code, entry in document.items():
        if _PAYMENT_CODE.fullmatch(code) is None:
            raise ValueError(f"payment code {code!r}: must be 1-28 digits, without spaces")
        try:
            bills[code] = _entry(entry)
        except ValueError as exc:
            raise ValueError(f"payment code {code}: {exc}") from None
    return bills


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; a payment code listed twice is a mistake.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice")
        result[key] = value
    return result


def _entry(entry: Any) -> Outcome:
    if not isinstance(entry, dict):
        raise ValueError("must be a JSON object")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise _FieldError(unknown[0], f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    if "status" in entry:
        # A paid or expired entry may keep its old bill fields; they are not looked at.
        status = entry["status"]
        if not isinstance(status, str) or status not in _STATUSES:
            raise _FieldError("status", 'must be "paid" or "expired"')
        return _STATUSES[status]
    name = _text(entry, "name")
    if name is None:
        raise _FieldError("name", "is required")
    trx_type = entry.get("trx_type", "C")
    if trx_type not in _TRX_TYPES:
        raise _FieldError("trx_type", 'must be "C", "O" or "V"')
    amount = _money(entry, "amount")
    if amount is None:
        if trx_type == "C":
            raise _FieldError("amount", "is required for a closed bill (trx_type C)")
        amount = Decimal("0.00")
    bill = Bill(
        name=name,
        amount=amount,
        trx_type=trx_type,
        min_amount=_money(entry, "min_amount"),
        max_amount=_money(entry, "max_amount"),
        expires_at=_timestamp(entry, "expires_at"),
        trx_id=_text(entry, "trx_id"),
        email=_text(entry, "email"),
        phone=_text(entry, "phone"),
    )
    # The gateway checks every bill before answering; checking here too turns a bad entry into
    # a config error at start instead of an internal error on the payer's inquiry.
    try:
        validate_bill(bill)
    except ResolverError as exc:
        raise ValueError(str(exc)) from None
    return bill


def _text(entry: Mapping[str, Any], field: str) -> str | None:
    value = entry.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _FieldError(field, "must be a string")
    return value


def _money(entry: Mapping[str, Any], field: str) -> Decimal | None:
    value = entry.get(field)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A JSON number may already have been rounded by whatever wrote the file.
        raise _FieldError(field, 'must be a string such as "25000.00", not a JSON number')
    if not isinstance(value, str) or _MONEY.fullmatch(value) is None:
        raise _FieldError(field, 'must be a string of digits with up to two decimals ("25000.00")')
    return Decimal(value)


def _timestamp(entry: Mapping[str, Any], field: str) -> datetime | None:
    value = _text(entry, field)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _FieldError(field, "must be an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise _FieldError(field, "needs a UTC offset, such as 2025-01-31T23:59:59+07:00")
    return moment
