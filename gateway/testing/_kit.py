"""Builders for what the gateway hands a resolver, for testing resolvers without DOKU.

:func:`make_inquiry` and :func:`make_payment` write the body DOKU would send and pass it through
the gateway's own parsers (:func:`gateway.snap.inquiry.parse_inquiry`,
:func:`gateway.snap.payment.parse_payment`), so a resolver under test sees exactly the values,
padding and read-only bodies it sees in production. :func:`make_context` builds the
:class:`~gateway.ResolverContext` that ``startup`` receives.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from gateway import Inquiry, Outcome, Payment, ResolverContext
from gateway.snap.amounts import format_amount
from gateway.snap.inquiry import parse_inquiry
from gateway.snap.payment import check_amount, parse_payment

__all__ = ["Invalidations", "make_context", "make_inquiry", "make_payment"]

#: DOKU pads ``partnerServiceId`` to eight characters with spaces on the left.
_PARTNER_WIDTH = 8
_DEFAULT_PREFIX_LENGTH = 5


def _split(va: str, partner_service_id: str | None) -> tuple[str, str]:
    code = va.replace(" ", "")
    if not code.isdigit() or not code.isascii() or len(code) > 28:
        raise ValueError(f"va {va!r} must be up to 28 digits (spaces are ignored)")
    prefix = (
        partner_service_id.strip()
        if partner_service_id is not None
        else code[: min(_DEFAULT_PREFIX_LENGTH, len(code) - 1)]
    )
    if not prefix or not code.startswith(prefix) or len(prefix) > _PARTNER_WIDTH:
        raise ValueError(f"partner_service_id {prefix!r} must be 1-8 digits that start {code}")
    customer = code[len(prefix) :]
    if not 1 <= len(customer) <= 20:
        raise ValueError(f"va {va!r}: the customer number after {prefix} must be 1-20 digits")
    return prefix.rjust(_PARTNER_WIDTH), customer


def _request_id(kind: str) -> str:
    # Unique across processes too, like DOKU's own ids.
    return f"{kind}-{secrets.token_hex(8)}"


def make_inquiry(
    va: str,
    *,
    partner_service_id: str | None = None,
    inquiry_request_id: str | None = None,
    channel: str = "VIRTUAL_ACCOUNT_BANK_MANDIRI",
    trx_date_init: str | None = "2025-01-31T10:00:00+07:00",
    language: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Inquiry:
    """The :class:`~gateway.Inquiry` the gateway passes ``resolve`` for VA number ``va``.

    ``va`` is the payment code (digits; spaces are ignored). ``partner_service_id`` is the
    BIN / company prefix it starts with, by default its first five digits; it is padded to
    eight characters as DOKU sends it. ``extra`` adds body fields. A fresh
    ``inquiry_request_id`` is made unless one is given.
    """
    partner, customer = _split(va, partner_service_id)
    body: dict[str, Any] = {
        "partnerServiceId": partner,
        "customerNo": customer,
        "virtualAccountNo": partner + customer,
        "inquiryRequestId": inquiry_request_id or _request_id("inquiry"),
        "additionalInfo": {"channel": channel},
    }
    if trx_date_init is not None:
        body["trxDateInit"] = trx_date_init
    if language is not None:
        body["language"] = language
    body.update(extra or {})
    return parse_inquiry(body)


def make_payment(
    va: str,
    amount: Decimal | str,
    *,
    payment_request_id: str | None = None,
    partner_service_id: str | None = None,
    bill: Outcome | None = None,
    flags: tuple[str, ...] | None = None,
    name: str = "Test Payer",
    trx_id: str | None = None,
    trx_date_time: str = "2025-01-31T10:05:00+07:00",
    trx_type: str | None = None,
    channel: str = "VIRTUAL_ACCOUNT_BANK_MANDIRI",
    inquiry_request_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Payment:
    """The :class:`~gateway.Payment` the gateway passes ``on_payment`` for ``amount`` paid in.

    ``amount`` is a :class:`~decimal.Decimal` or a string such as ``"25000.00"`` (never a float).
    With ``bill`` (what the resolver answers for ``va`` now) the payment gets the ``flags`` the
    gateway would set (``amount_differs``, ``below_min``, …); ``flags`` sets them directly.
    A fresh ``payment_request_id`` is made unless one is given: pass the same one twice to test
    that the hook is idempotent.
    """
    if isinstance(amount, float):
        raise TypeError("amount must be a Decimal or a string such as '25000.00', not a float")
    partner, customer = _split(va, partner_service_id)
    info: dict[str, Any] = {"channel": channel, "senderName": name}
    body: dict[str, Any] = {
        "partnerServiceId": partner,
        "customerNo": customer,
        "virtualAccountNo": partner + customer,
        "virtualAccountName": name,
        "paymentRequestId": payment_request_id or _request_id("payment"),
        "paidAmount": {"value": format_amount(Decimal(amount)), "currency": "IDR"},
        "trxDateTime": trx_date_time,
        "additionalInfo": info,
    }
    if trx_id is not None:
        body["trxId"] = trx_id
    if trx_type is not None:
        body["virtualAccountTrxType"] = trx_type
    if inquiry_request_id is not None:
        body["inquiryRequestId"] = inquiry_request_id
    body.update(extra or {})
    payment = check_amount(parse_payment(body), bill)
    return payment if flags is None else replace(payment, flags=flags)


@dataclass
class Invalidations:
    """A ``ResolverContext.invalidate`` that records the payment codes it was given."""

    codes: list[str] = field(default_factory=list)

    async def __call__(self, payment_code: str) -> None:
        self.codes.append(payment_code)


def make_context(
    name: str = "test",
    options: Mapping[str, Any] | None = None,
    *,
    invalidate: Invalidations | None = None,
    logger: logging.Logger | None = None,
) -> ResolverContext:
    """The :class:`~gateway.ResolverContext` a resolver's ``startup`` receives.

    Pass an :class:`Invalidations` to see which cached answers the resolver asked to drop.
    """
    return ResolverContext(
        name=name,
        options=dict(options or {}),
        invalidate=invalidate if invalidate is not None else Invalidations(),
        logger=logger or logging.getLogger(f"doku_gateway.resolver.{name}"),
    )
