"""The backend's JSON answer → :class:`~gateway.Bill` or :class:`~gateway.BillStatus`.

Money must arrive as a JSON string and is parsed as :class:`~decimal.Decimal`: a JSON number may
already have been through a float on the backend's side.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway import Bill, BillStatus, Outcome, TrxType

__all__ = ["parse_answer"]

_MONEY = re.compile(r"\d{1,16}(?:\.\d{1,2})?")
_TRX_TYPES = ("C", "O", "V")
_STATUSES = {"paid": BillStatus.ALREADY_PAID, "expired": BillStatus.EXPIRED}


def parse_answer(document: Any) -> Outcome:
    """Turn a decoded ``200`` body into an outcome; ``ValueError`` naming the field when wrong.

    ``{"status": "paid"}`` and ``{"status": "expired"}`` are answers without a bill. Fields the
    gateway does not know are ignored, so a backend may send more than it needs to.
    """
    if not isinstance(document, dict):
        raise ValueError("the answer must be a JSON object")
    status = document.get("status")
    if status is not None:
        if not isinstance(status, str) or status not in _STATUSES:
            raise ValueError('status: must be "paid" or "expired"')
        return _STATUSES[status]
    name = _text(document, "name")
    if name is None:
        raise ValueError("name: is required")
    trx_type: TrxType = "C" if document.get("trx_type") is None else document["trx_type"]
    if trx_type not in _TRX_TYPES:
        raise ValueError('trx_type: must be "C", "O" or "V"')
    amount = _money(document, "amount")
    if amount is None:
        if trx_type == "C":
            raise ValueError("amount: is required for a closed bill (trx_type C)")
        amount = Decimal("0.00")
    return Bill(
        name=name,
        amount=amount,
        trx_type=trx_type,
        min_amount=_money(document, "min_amount"),
        max_amount=_money(document, "max_amount"),
        expires_at=_timestamp(document, "expires_at"),
        trx_id=_text(document, "trx_id"),
        email=_text(document, "email"),
        phone=_text(document, "phone"),
        cache_ttl=_seconds(document, "cache_ttl"),
    )


def status_of_gone(document: Any) -> BillStatus:
    """The outcome of a ``410``: its body's ``status`` when it names one, else expired."""
    status = document.get("status") if isinstance(document, dict) else None
    if isinstance(status, str) and status in _STATUSES:
        return _STATUSES[status]
    return BillStatus.EXPIRED


def _text(document: Mapping[str, Any], field: str) -> str | None:
    value = document.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field}: must be a string")
    return value


def _money(document: Mapping[str, Any], field: str) -> Decimal | None:
    value = document.get(field)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f'{field}: must be a string such as "25000.00", not a JSON number')
    if not isinstance(value, str) or _MONEY.fullmatch(value) is None:
        raise ValueError(f"{field}: must be a string of digits with up to two decimals")
    return Decimal(value)


def _timestamp(document: Mapping[str, Any], field: str) -> datetime | None:
    value = _text(document, field)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field}: must be an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError(f"{field}: needs a UTC offset")
    return moment


def _seconds(document: Mapping[str, Any], field: str) -> float | None:
    value = document.get(field)
    if value is None:
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError
        seconds = float(value)
    except (TypeError, OverflowError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{field}: must be a non-negative number of seconds")
    return seconds
