"""Values exchanged between the protocol code, the gateway and resolver plugins.

Money is :class:`~decimal.Decimal`, VA numbers are strings: no float or int ever holds either.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = ["Bill", "BillStatus", "FreeText", "Inquiry", "Outcome", "Payment", "TrxType"]

TrxType = Literal["C", "O", "V"]


@dataclass(frozen=True, slots=True)
class Inquiry:
    """One verified inquiry, as a resolver sees it.

    String fields are verbatim from DOKU's body (``partner_service_id`` keeps its space padding);
    ``payment_code`` is ``virtualAccountNo`` with the spaces removed, the key to look bills up by.
    ``body`` is the whole verified request body, read-only.
    """

    partner_service_id: str
    customer_no: str
    virtual_account_no: str
    payment_code: str
    inquiry_request_id: str
    channel: str | None
    body: Mapping[str, Any]
    trx_date_init: str | None = None
    language: str | None = None

    @property
    def partner_prefix(self) -> str:
        """``partnerServiceId`` without padding: the BIN / company prefix."""
        return self.partner_service_id.strip()


@dataclass(frozen=True, slots=True)
class FreeText:
    """One extra line for the ATM screen, in both languages."""

    english: str
    indonesia: str


@dataclass(frozen=True, slots=True)
class Bill:
    """A payable bill.

    ``trx_type`` is ``"C"`` (closed: exactly ``amount``), ``"O"`` (open: the payer keys the amount,
    ``amount`` is usually zero) or ``"V"`` (accepted by DOKU, meaning undocumented).
    ``min_amount``/``max_amount`` are only allowed with ``"O"`` and ``"V"``. ``cache_ttl`` is a
    hint in seconds for how long the answer may be reused (``0`` disables caching).
    """

    name: str
    amount: Decimal
    trx_type: TrxType = "C"
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    expires_at: datetime | None = None
    trx_id: str | None = None
    email: str | None = None
    phone: str | None = None
    free_text: tuple[FreeText, ...] = ()
    reusable: bool | None = None
    currency: str = "IDR"
    cache_ttl: float | None = None


class BillStatus(enum.Enum):
    """Why there is no payable bill."""

    NOT_FOUND = "not_found"
    ALREADY_PAID = "already_paid"
    EXPIRED = "expired"


#: What a resolver returns.
Outcome = Bill | BillStatus


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment DOKU notified, as a resolver's ``on_payment`` hook sees it.

    VA strings are verbatim; ``payment_code`` has the spaces removed. ``paid_amount`` is what the
    customer paid. ``flags`` name rules the payment broke (``amount_differs``, ``below_min``,
    ``above_max``, ``bill_not_payable``): such a payment is still delivered, never dropped; the
    merchant decides. ``body`` is the whole verified notification, read-only.
    """

    partner_service_id: str
    customer_no: str
    virtual_account_no: str
    payment_code: str
    payment_request_id: str
    paid_amount: Decimal
    currency: str
    body: Mapping[str, Any]
    virtual_account_name: str | None = None
    trx_id: str | None = None
    trx_date_time: str | None = None
    trx_type: str | None = None
    channel: str | None = None
    inquiry_request_id: str | None = None
    sender_name: str | None = None
    source_account_no: str | None = None
    source_bank_code: str | None = None
    source_bank_name: str | None = None
    flags: tuple[str, ...] = ()
