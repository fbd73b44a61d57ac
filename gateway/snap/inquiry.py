"""The direct inquiry (service 24): request rules and the answer's shape (spec §7)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from ..exceptions import ResolverError
from .amounts import format_amount
from .codes import Case
from .errors import SnapError
from .fields import optional_str
from .models import Bill, FreeText, Inquiry
from .timestamps import WIB

__all__ = ["BillTemplate", "bill_template", "parse_inquiry", "render_bill", "validate_bill"]

# re.ASCII: without it \d accepts any Unicode digit ("٨٨٨٩٩"), which no bank sends.
_PARTNER_SERVICE_ID = re.compile(r" {0,7}\d{1,8}", re.ASCII)
_CUSTOMER_NO = re.compile(r"\d{1,20}", re.ASCII)
# Space padding on the left only, then digits (length checked separately, 28 at most).
_VA_NO = re.compile(r" *\d+", re.ASCII)
_CHANNEL_CODE = re.compile(r"\d{1,4}", re.ASCII)
# DOKU's create-VA validator allows only these characters in a VA name (spec §7.3).
_VA_NAME = re.compile(r"[A-Za-z0-9 .\-/+,=_:'@%]{1,255}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}")
_PHONE = re.compile(r"\+?\d{9,30}", re.ASCII)


def _field(
    document: Mapping[str, Any],
    key: str,
    max_length: int,
    pattern: re.Pattern[str] | None = None,
    path: str | None = None,
) -> str:
    # The hot path's version of fields.require_str: same rules, fewer calls.
    value = document.get(key)
    if value is None or value == "":
        raise SnapError(Case.MISSING_MANDATORY_FIELD, path or key)
    if (
        value.__class__ is not str
        or len(value) > max_length
        or (pattern is not None and pattern.fullmatch(value) is None)
    ):
        raise SnapError(Case.INVALID_FIELD_FORMAT, path or key)
    return value


def parse_inquiry(document: Mapping[str, Any], *, check_composition: bool = True) -> Inquiry:
    """Validate an inquiry body and return its :class:`Inquiry`.

    Padding stays in every string; only ``payment_code`` has the spaces removed.
    """
    partner = _field(document, "partnerServiceId", 8, _PARTNER_SERVICE_ID)
    customer = _field(document, "customerNo", 20, _CUSTOMER_NO)
    va_no = _field(document, "virtualAccountNo", 28, _VA_NO)
    payment_code = va_no.replace(" ", "")
    if not payment_code:
        raise SnapError(Case.INVALID_FIELD_FORMAT, "virtualAccountNo")
    if check_composition and payment_code != partner.strip() + customer:
        raise SnapError(Case.INVALID_FIELD_FORMAT, "virtualAccountNo")
    request_id = _field(document, "inquiryRequestId", 128)
    info = document.get("additionalInfo")
    if info is None:
        raise SnapError(Case.MISSING_MANDATORY_FIELD, "additionalInfo")
    if info.__class__ is not dict:
        raise SnapError(Case.INVALID_FIELD_FORMAT, "additionalInfo")
    channel = _field(info, "channel", 30, path="additionalInfo.channel")
    trx_date_init = optional_str(document, "trxDateInit", "trxDateInit", 40)
    language = optional_str(document, "language", "language", 2)
    channel_code = document.get("channelCode")
    # The MCC comes as a number in DANA-style bodies and as a string in DOKU's SDK model.
    if channel_code is not None and (
        isinstance(channel_code, bool)
        or not isinstance(channel_code, int | str)
        or _CHANNEL_CODE.fullmatch(str(channel_code)) is None
    ):
        raise SnapError(Case.INVALID_FIELD_FORMAT, "channelCode")
    amount = document.get("amount")
    if amount is not None and not isinstance(amount, dict):
        raise SnapError(Case.INVALID_FIELD_FORMAT, "amount")
    return Inquiry(
        partner_service_id=partner,
        customer_no=customer,
        virtual_account_no=va_no,
        payment_code=payment_code,
        inquiry_request_id=request_id,
        channel=channel,
        body=MappingProxyType(dict(document)),
        trx_date_init=trx_date_init,
        language=language,
    )


def validate_bill(bill: Bill) -> None:
    """Raise :class:`ResolverError` when ``bill`` cannot be sent to DOKU as it is."""
    problems: list[str] = []
    if not isinstance(bill.name, str) or _VA_NAME.fullmatch(bill.name) is None:
        problems.append("name must be 1-255 characters of [A-Za-z0-9 .-/+,=_:'@%]")
    if bill.trx_type not in ("C", "O", "V"):
        problems.append("trx_type must be 'C', 'O' or 'V'")
    if bill.currency != "IDR":
        problems.append("currency must be IDR")
    # Untyped resolvers can leave ``amount`` None; for "O"/"V" that would reach render_bill.
    if bill.amount is None:
        problems.append("amount is missing")
    for label, value in (
        ("amount", bill.amount),
        ("min_amount", bill.min_amount),
        ("max_amount", bill.max_amount),
    ):
        if value is None:
            continue
        try:
            format_amount(value)
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
    limits = bill.min_amount is not None or bill.max_amount is not None
    if limits and bill.trx_type == "C":
        problems.append("min_amount/max_amount are only allowed with trx_type 'O' or 'V'")
    if bill.trx_type == "C" and not problems and bill.amount <= 0:
        problems.append("a closed bill needs a positive amount")
    if (
        bill.min_amount is not None
        and bill.max_amount is not None
        and not problems
        and bill.min_amount > bill.max_amount
    ):
        problems.append("min_amount must not exceed max_amount")
    if bill.expires_at is not None:
        if not isinstance(bill.expires_at, datetime):
            problems.append("expires_at must be a datetime")
        elif bill.expires_at.utcoffset() is None:
            # A naive time could be UTC (a database driver) or local: guessing would move the
            # expiry by 7 hours, so the bill is refused instead.
            problems.append(
                "expires_at must be a timezone-aware datetime, not the naive "
                f"{bill.expires_at.isoformat()} (give it tzinfo=WIB or timezone.utc)"
            )
    if bill.trx_id is not None and (not isinstance(bill.trx_id, str) or len(bill.trx_id) > 64):
        problems.append("trx_id must be a string of at most 64 characters")
    if bill.email is not None and _EMAIL.fullmatch(bill.email) is None:
        problems.append("email is not an e-mail address")
    if bill.phone is not None and _PHONE.fullmatch(bill.phone) is None:
        problems.append("phone must be 9-30 digits")
    if not isinstance(bill.free_text, tuple) or not all(
        isinstance(line, FreeText) for line in bill.free_text
    ):
        problems.append("free_text must be a tuple of FreeText")
    for line in bill.free_text if isinstance(bill.free_text, tuple) else ():
        if len(line.english) > 64 or len(line.indonesia) > 64:
            problems.append("free_text lines are at most 64 characters")
            break
    if problems:
        raise ResolverError("invalid bill: " + "; ".join(problems))


def render_bill(inquiry: Inquiry, bill: Bill, *, open_amount_value: str = "0.00") -> dict[str, Any]:
    """The ``2002400`` body for ``bill``, echoing the request's strings byte for byte."""
    if bill.trx_type == "O" and bill.amount == 0:
        value = open_amount_value
    else:
        value = format_amount(bill.amount)
    info: dict[str, Any] = {"channel": inquiry.channel}
    if bill.trx_id is not None:
        info["trxId"] = bill.trx_id
    config: dict[str, Any] = {}
    if bill.reusable is not None:
        config["reusableStatus"] = bill.reusable
    if bill.min_amount is not None:
        config["minAmount"] = format_amount(bill.min_amount)
    if bill.max_amount is not None:
        config["maxAmount"] = format_amount(bill.max_amount)
    if config:
        info["virtualAccountConfig"] = config
    data: dict[str, Any] = {
        "partnerServiceId": inquiry.partner_service_id,
        "customerNo": inquiry.customer_no,
        "virtualAccountNo": inquiry.virtual_account_no,
        "virtualAccountName": bill.name,
    }
    if bill.email is not None:
        data["virtualAccountEmail"] = bill.email
    if bill.phone is not None:
        data["virtualAccountPhone"] = bill.phone
    data["inquiryRequestId"] = inquiry.inquiry_request_id
    data["totalAmount"] = {"value": value, "currency": bill.currency}
    data["virtualAccountTrxType"] = bill.trx_type
    if bill.expires_at is not None:
        # DOKU's samples are in WIB whatever zone the resolver's database answered in.
        data["expiredDate"] = bill.expires_at.astimezone(WIB).isoformat(timespec="seconds")
    data["inquiryStatus"] = "00"
    data["inquiryReason"] = {"english": "Success", "indonesia": "Sukses"}
    if bill.free_text:
        data["freeText"] = [
            {"english": t.english, "indonesia": t.indonesia} for t in bill.free_text
        ]
    data["additionalInfo"] = info
    return {"responseCode": "2002400", "responseMessage": "Successful", "virtualAccountData": data}


_ECHO = "\x00echo{}\x00"
_string = json.encoder.py_encode_basestring  # replaced below by the C version when available
_string = getattr(json.encoder, "c_encode_basestring", None) or _string


@dataclass(frozen=True, slots=True)
class BillTemplate:
    """A bill's ``2002400`` answer, pre-rendered around the five strings echoed per request.

    Rendering the same cached bill for every inquiry is the hot path; the bill's own part is
    formatted once here and only the request's strings are encoded per request. The output is
    byte for byte ``json_bytes(render_bill(...))``.
    """

    parts: tuple[bytes, ...]

    def render(self, inquiry: Inquiry) -> bytes:
        p = self.parts
        try:
            return b"".join(
                (
                    p[0],
                    _string(inquiry.partner_service_id).encode(),
                    p[1],
                    _string(inquiry.customer_no).encode(),
                    p[2],
                    _string(inquiry.virtual_account_no).encode(),
                    p[3],
                    _string(inquiry.inquiry_request_id).encode(),
                    p[4],
                    _string(inquiry.channel or "").encode(),
                    p[5],
                )
            )
        except UnicodeEncodeError:
            # A lone surrogate in an echoed string (valid JSON, not UTF-8): escape it.
            ascii_string = json.encoder.py_encode_basestring_ascii
            return b"".join(
                (
                    p[0],
                    ascii_string(inquiry.partner_service_id).encode(),
                    p[1],
                    ascii_string(inquiry.customer_no).encode(),
                    p[2],
                    ascii_string(inquiry.virtual_account_no).encode(),
                    p[3],
                    ascii_string(inquiry.inquiry_request_id).encode(),
                    p[4],
                    ascii_string(inquiry.channel or "").encode(),
                    p[5],
                )
            )


def bill_template(bill: Bill, open_amount_value: str = "0.00") -> BillTemplate:
    """The template of a (validated) bill; cached, since cached bills repeat."""
    try:
        return _cached_template(bill, open_amount_value)
    except TypeError:  # an unhashable field a resolver slipped in: render without the cache
        return _template(bill, open_amount_value)


@functools.lru_cache(maxsize=4096)
def _cached_template(bill: Bill, open_amount_value: str) -> BillTemplate:
    return _template(bill, open_amount_value)


_MARKERS = tuple(_ECHO.format(i) for i in range(5))
_MARKERS_JSON = tuple(json.dumps(marker) for marker in _MARKERS)
_PROBE = Inquiry(_MARKERS[0], _MARKERS[1], _MARKERS[2], "", _MARKERS[3], _MARKERS[4], {})


def _template(bill: Bill, open_amount_value: str) -> BillTemplate:
    text = json.dumps(
        render_bill(_PROBE, bill, open_amount_value=open_amount_value),
        ensure_ascii=False,
        separators=(",", ":"),
    )
    parts: list[bytes] = []
    for marker in _MARKERS_JSON:
        before, _, text = text.partition(marker)
        parts.append(before.encode("utf-8"))
    parts.append(text.encode("utf-8"))
    return BillTemplate(tuple(parts))
