"""The payment notification (service 25): request rules, the acknowledgement, amount checks
(spec §8)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from .amounts import parse_amount
from .codes import Case
from .errors import SnapError
from .fields import optional_object, optional_str, require_object, require_str
from .models import Bill, BillStatus, Outcome, Payment

__all__ = ["check_amount", "parse_payment", "render_ack"]

_PARTNER_SERVICE_ID = re.compile(r" {0,7}\d{1,8}", re.ASCII)
_CUSTOMER_NO = re.compile(r"\d{1,20}", re.ASCII)
# Space padding on the left only, then digits (length checked separately, 28 at most).
_VA_NO = re.compile(r" *\d+", re.ASCII)
_TRX_TYPE = re.compile(r"[COV]")


def parse_payment(document: Mapping[str, Any], *, check_composition: bool = True) -> Payment:
    """Validate a notification body and return its :class:`Payment` (no flags yet)."""
    partner = require_str(document, "partnerServiceId", "partnerServiceId", 8, _PARTNER_SERVICE_ID)
    customer = require_str(document, "customerNo", "customerNo", 20, _CUSTOMER_NO)
    va_no = require_str(document, "virtualAccountNo", "virtualAccountNo", 28, _VA_NO)
    payment_code = va_no.replace(" ", "")
    if not payment_code or (check_composition and payment_code != partner.strip() + customer):
        raise SnapError(Case.INVALID_FIELD_FORMAT, "virtualAccountNo")
    request_id = require_str(document, "paymentRequestId", "paymentRequestId", 128)
    paid = require_object(document, "paidAmount", "paidAmount")
    value = require_str(paid, "value", "paidAmount.value", 19)
    try:
        amount = parse_amount(value)
    except ValueError:
        raise SnapError(Case.INVALID_FIELD_FORMAT, "paidAmount.value") from None
    currency = require_str(paid, "currency", "paidAmount.currency", 3)
    if currency != "IDR":
        raise SnapError(Case.INVALID_FIELD_FORMAT, "paidAmount.currency")
    info = optional_object(document, "additionalInfo", "additionalInfo") or {}
    # DOKU's PHP SDK spells it "souceBankName"; accept both, prefer the correct one.
    bank_name = optional_str(info, "sourceBankName", "additionalInfo.sourceBankName", 255)
    if bank_name is None:
        bank_name = optional_str(info, "souceBankName", "additionalInfo.souceBankName", 255)
    return Payment(
        partner_service_id=partner,
        customer_no=customer,
        virtual_account_no=va_no,
        payment_code=payment_code,
        payment_request_id=request_id,
        paid_amount=amount,
        currency=currency,
        body=MappingProxyType(dict(document)),
        virtual_account_name=optional_str(
            document, "virtualAccountName", "virtualAccountName", 255
        ),
        trx_id=optional_str(document, "trxId", "trxId", 64),
        trx_date_time=optional_str(document, "trxDateTime", "trxDateTime", 40),
        trx_type=optional_str(
            document, "virtualAccountTrxType", "virtualAccountTrxType", 1, _TRX_TYPE
        ),
        channel=optional_str(info, "channel", "additionalInfo.channel", 30),
        inquiry_request_id=optional_str(document, "inquiryRequestId", "inquiryRequestId", 128),
        sender_name=optional_str(info, "senderName", "additionalInfo.senderName", 255),
        source_account_no=optional_str(
            info, "sourceAccountNo", "additionalInfo.sourceAccountNo", 64
        ),
        source_bank_code=optional_str(info, "sourceBankCode", "additionalInfo.sourceBankCode", 16),
        source_bank_name=bank_name,
    )


def render_ack(document: Mapping[str, Any]) -> dict[str, Any]:
    """The ``2002500`` body, nested ``virtualAccountData`` (the SNAP shape, spec §8.3),
    echoing the first notification's strings."""
    data: dict[str, Any] = {
        "partnerServiceId": document.get("partnerServiceId"),
        "customerNo": document.get("customerNo"),
        "virtualAccountNo": document.get("virtualAccountNo"),
        "virtualAccountName": document.get("virtualAccountName"),
        "paymentRequestId": document.get("paymentRequestId"),
    }
    if document.get("trxId") is not None:
        data["trxId"] = document["trxId"]
    if document.get("additionalInfo") is not None:
        data["additionalInfo"] = document["additionalInfo"]
    return {"responseCode": "2002500", "responseMessage": "Successful", "virtualAccountData": data}


def check_amount(payment: Payment, bill: Outcome | None) -> Payment:
    """Flag a payment that breaks its bill's rules; ``bill`` is what the resolver says now."""
    if bill is None:
        return payment
    flags: list[str] = []
    if isinstance(bill, BillStatus):
        flags.append(f"bill_{bill.value}")
    elif isinstance(bill, Bill):
        if bill.trx_type == "C" and payment.paid_amount != bill.amount:
            flags.append("amount_differs")
        if bill.min_amount is not None and payment.paid_amount < bill.min_amount:
            flags.append("below_min")
        if bill.max_amount is not None and payment.paid_amount > bill.max_amount:
            flags.append("above_max")
    return replace(payment, flags=tuple(flags)) if flags else payment
