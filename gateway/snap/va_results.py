"""DOKU's answers to the VA API: check-status results and VA results, read leniently but
checked for shape, so a malformed answer is a clear error rather than a crash."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from .models import FreeText

__all__ = ["CheckStatusResult", "VaResult", "is_paid"]

_LENIENT_AMOUNT = re.compile(r"\d{1,16}(\.\d{1,2})?", re.ASCII)

# -- DOKU's answers ---------------------------------------------------------------------------

_PAID_WORDS = frozenset({"success", "successful", "paid", "sukses", "berhasil", "terbayar"})


def is_paid(
    flag_status: str | None, flag_reason: FreeText | None, paid_amount: Decimal | None
) -> bool:
    """Whether a check-status answer reports the VA paid, from the strongest evidence present.

    ``paymentFlagStatus`` (BI: ``"00"`` success) decides when DOKU sends it; DOKU's own SDK models
    only ``paymentFlagReason`` (``Pending``/``Belum Terbayar`` while unpaid), so the reason decides
    next; without either, a positive ``paidAmount`` does. The value list is not published
    (spec §10), so anything unrecognised counts as not paid.
    """
    if flag_status is not None:
        return flag_status == "00"
    if flag_reason is not None and (flag_reason.english or flag_reason.indonesia):
        words = {(flag_reason.english or "").strip().lower()}
        words.add((flag_reason.indonesia or "").strip().lower())
        return bool(words & _PAID_WORDS)
    return paid_amount is not None and paid_amount > 0


def _shape_error(path: str, rule: str) -> ValueError:
    return ValueError(f"{path} {rule}")


def _answer_object(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _shape_error(key, "is not an object")
    return value


def _answer_text(document: Mapping[str, Any], key: str, path: str) -> str | None:
    value = document.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _shape_error(path, "is not a string")


def _answer_amount(document: Mapping[str, Any], key: str) -> Decimal | None:
    money = _answer_object(document, key)
    value = money.get("value")
    if value is None:
        return None
    # Be liberal in what we read: "0", 0 and "25000.5" are all plain amounts.
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if _LENIENT_AMOUNT.fullmatch(text) is None:
        raise _shape_error(f"virtualAccountData.{key}.value", "is not an amount")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise _shape_error(f"virtualAccountData.{key}.value", "is not an amount") from None


def _head(document: Mapping[str, Any]) -> tuple[str, str]:
    code = document.get("responseCode")
    message = document.get("responseMessage")
    if not isinstance(code, str):
        raise _shape_error("responseCode", "is missing")
    return code, message if isinstance(message, str) else ""


@dataclass(frozen=True, slots=True)
class CheckStatusResult:
    """DOKU's answer to check status; ``paid`` comes from :func:`is_paid`, ``body`` is verbatim."""

    response_code: str
    response_message: str
    paid: bool
    partner_service_id: str | None
    customer_no: str | None
    virtual_account_no: str | None
    trx_id: str | None
    payment_request_id: str | None
    inquiry_request_id: str | None
    paid_amount: Decimal | None
    payment_flag_status: str | None
    payment_flag_reason: FreeText | None
    body: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_body(cls, document: Mapping[str, Any]) -> CheckStatusResult:
        """Read a ``2002600`` answer; ``ValueError`` when its shape is not DOKU's."""
        code, message = _head(document)
        data = _answer_object(document, "virtualAccountData")
        reason_doc = _answer_object(data, "paymentFlagReason")
        reason = None
        if reason_doc:
            reason = FreeText(
                _answer_text(reason_doc, "english", "paymentFlagReason.english") or "",
                _answer_text(reason_doc, "indonesia", "paymentFlagReason.indonesia") or "",
            )
        # Some SNAP stacks put paymentFlagStatus in additionalInfo rather than the VA data.
        flag = _answer_text(data, "paymentFlagStatus", "virtualAccountData.paymentFlagStatus")
        if flag is None:
            info = _answer_object(data, "additionalInfo")
            flag = _answer_text(info, "paymentFlagStatus", "additionalInfo.paymentFlagStatus")
        amount = _answer_amount(data, "paidAmount")

        def text(key: str) -> str | None:
            return _answer_text(data, key, f"virtualAccountData.{key}")

        return cls(
            response_code=code,
            response_message=message,
            paid=is_paid(flag, reason, amount),
            partner_service_id=text("partnerServiceId"),
            customer_no=text("customerNo"),
            virtual_account_no=text("virtualAccountNo"),
            trx_id=text("trxId"),
            payment_request_id=text("paymentRequestId"),
            inquiry_request_id=text("inquiryRequestId"),
            paid_amount=amount,
            payment_flag_status=flag,
            payment_flag_reason=reason,
            body=MappingProxyType(dict(document)),
        )


@dataclass(frozen=True, slots=True)
class VaResult:
    """DOKU's answer to create/update/delete.

    ``virtual_account_no`` is DOKU's: with DOKU-generated codes (DGPC) it differs from the number
    sent. ``how_to_pay_page`` is DOKU's payment-instruction page for the customer,
    ``how_to_pay_api`` the same instructions as data for a merchant-built page.
    """

    response_code: str
    response_message: str
    virtual_account_no: str | None
    partner_service_id: str | None
    customer_no: str | None
    trx_id: str | None
    how_to_pay_page: str | None
    how_to_pay_api: str | None
    body: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_body(cls, document: Mapping[str, Any]) -> VaResult:
        """Read a ``2002700``/``2002800``/``2003100`` answer; ``ValueError`` on a foreign shape."""
        code, message = _head(document)
        data = _answer_object(document, "virtualAccountData")
        info = _answer_object(data, "additionalInfo") or _answer_object(document, "additionalInfo")

        def text(source: Mapping[str, Any], key: str) -> str | None:
            return _answer_text(source, key, key)

        return cls(
            response_code=code,
            response_message=message,
            virtual_account_no=text(data, "virtualAccountNo"),
            partner_service_id=text(data, "partnerServiceId"),
            customer_no=text(data, "customerNo"),
            trx_id=text(data, "trxId"),
            how_to_pay_page=text(info, "howToPayPage"),
            how_to_pay_api=text(info, "howToPayApi"),
            body=MappingProxyType(dict(document)),
        )
