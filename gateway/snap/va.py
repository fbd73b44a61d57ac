"""DOKU's VA API seen from the merchant: check status (26), create (27), update (28), delete (31).

Requests are frozen dataclasses checked when built, so a bad field raises
:class:`~gateway.exceptions.FieldError` naming it (with DOKU's JSON path) before anything is signed
or sent. ``from_body`` reads the same requests out of a JSON body under the same rules, which is
how the test fake answers like DOKU's validators. ``to_body`` keeps the key order of DOKU's API
reference. The rules are DOKU's (its SDK validators, spec §10-§11, the seed pages), not taste.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from .amounts import format_amount, parse_amount
from .codes import Case, Service
from .errors import FieldError
from .models import FreeText, TrxType
from .timestamps import format_timestamp

__all__ = [
    "CHECK_STATUS",
    "CREATE_VA",
    "DELETE_VA",
    "KNOWN_CHANNELS",
    "UPDATE_VA",
    "CheckStatusRequest",
    "CheckStatusResult",
    "CreateVaRequest",
    "DeleteVaRequest",
    "Endpoint",
    "UpdateVaRequest",
    "VaResult",
    "VaStatus",
    "is_paid",
    "pad_partner_service_id",
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One DOKU API operation: HTTP method, path (also the signed ``EndpointUrl``), service code."""

    method: str
    path: str
    service: Service


CHECK_STATUS = Endpoint("POST", "/orders/v1.0/transfer-va/status", Service.CHECK_STATUS)
CREATE_VA = Endpoint(
    "POST", "/virtual-accounts/bi-snap-va/v1.1/transfer-va/create-va", Service.CREATE_VA
)
UPDATE_VA = Endpoint(
    "PUT", "/virtual-accounts/bi-snap-va/v1.1/transfer-va/update-va", Service.UPDATE_VA
)
DELETE_VA = Endpoint(
    "DELETE", "/virtual-accounts/bi-snap-va/v1.1/transfer-va/delete-va", Service.DELETE_VA
)

#: The channels DOKU's SDKs enumerate (spec §12). ``channel`` stays an open string: DOKU adds
#: banks before its SDKs do, so an unknown value is sent as given (the client logs it).
KNOWN_CHANNELS = frozenset(
    {
        "VIRTUAL_ACCOUNT_BCA",
        "VIRTUAL_ACCOUNT_BANK_MANDIRI",
        "VIRTUAL_ACCOUNT_BRI",
        "VIRTUAL_ACCOUNT_BNI",
        "VIRTUAL_ACCOUNT_BANK_DANAMON",
        "VIRTUAL_ACCOUNT_BANK_PERMATA",
        "VIRTUAL_ACCOUNT_MAYBANK",
        "VIRTUAL_ACCOUNT_BNC",
        "VIRTUAL_ACCOUNT_BTN",
        "VIRTUAL_ACCOUNT_BSI",
        "VIRTUAL_ACCOUNT_BANK_CIMB",
        "VIRTUAL_ACCOUNT_SINARMAS",
        "VIRTUAL_ACCOUNT_DOKU",
        "VIRTUAL_ACCOUNT_BSS",
        "VIRTUAL_ACCOUNT_SINARMAS_FULL",
        "VIRTUAL_ACCOUNT_QNB",
    }
)

#: ``additionalInfo.virtualAccountConfig.status`` of an update.
VaStatus = Literal["ACTIVE", "INACTIVE"]

# re.ASCII everywhere: a str pattern's \d and \s also match non-ASCII digits and spaces.
_PARTNER_SERVICE_ID = re.compile(r"\s{0,7}\d{1,8}", re.ASCII)
_CUSTOMER_NO = re.compile(r"\d{1,20}", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9 .\-/+,=_:'@%]{1,255}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?=.{9,30}\Z)\+?\d+", re.ASCII)
_PRINTABLE = re.compile(r"[\x20-\x7e]+")
# DOKU parses expiredDate with this strptime format (SDK validators): no fraction, offset required.
_EXPIRY_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
_CONFIG = "additionalInfo.virtualAccountConfig"


def pad_partner_service_id(prefix: str) -> str:
    """``"88899"`` → ``"   88899"``: the BIN left-padded with spaces to DOKU's 8 characters."""
    return prefix.strip().rjust(8)


def _missing(path: str) -> FieldError:
    return FieldError(Case.MISSING_MANDATORY_FIELD, path, "is required")


def _invalid(path: str, reason: str) -> FieldError:
    return FieldError(Case.INVALID_FIELD_FORMAT, path, reason)


def _text(
    value: object,
    path: str,
    max_length: int,
    pattern: re.Pattern[str] = _PRINTABLE,
    rule: str = "must be printable ASCII",
    *,
    required: bool = True,
) -> None:
    if value is None or (required and value == ""):
        if required:
            raise _missing(path)
        return
    if not isinstance(value, str):
        raise _invalid(path, "must be a string")
    if not value:
        raise _invalid(path, "must not be empty")
    if len(value) > max_length:
        raise _invalid(path, f"must be at most {max_length} characters")
    if pattern.fullmatch(value) is None:
        raise _invalid(path, rule)


def _check_va(partner: object, customer: object, va_no: object) -> None:
    rule = "must be exactly 8 characters: the 1-8 digit prefix left-padded with spaces"
    _text(partner, "partnerServiceId", 8, _PARTNER_SERVICE_ID, rule)
    if len(str(partner)) != 8:
        raise _invalid("partnerServiceId", rule)
    _text(customer, "customerNo", 20, _CUSTOMER_NO, "must be 1-20 digits")
    _text(va_no, "virtualAccountNo", 28)
    if va_no != str(partner) + str(customer):
        raise _invalid("virtualAccountNo", "must equal partnerServiceId + customerNo, padding kept")


def _check_common(name: object, email: object, phone: object, *, name_required: bool) -> None:
    _text(
        name,
        "virtualAccountName",
        255,
        _NAME,
        "may hold only letters, digits, spaces and . - / + , = _ : ' @ %",
        required=name_required,
    )
    _text(email, "virtualAccountEmail", 255, _EMAIL, "is not an e-mail address", required=False)
    _text(phone, "virtualAccountPhone", 30, _PHONE, "must be 9-30 digits", required=False)


def _check_amount(value: object, path: str) -> str:
    if value is None:
        raise _missing(path)
    if not isinstance(value, Decimal):
        raise _invalid(path, "must be a Decimal")
    try:
        return format_amount(value)
    except ValueError as exc:
        raise _invalid(path, str(exc)) from None


def _check_trx_type(value: object) -> None:
    if value is None or value == "":
        raise _missing("virtualAccountTrxType")
    if value not in ("C", "O", "V"):
        raise _invalid("virtualAccountTrxType", "must be C (closed), O (open) or V")


def _check_amount_for_type(trx_type: object, amount: Decimal) -> None:
    if trx_type == "C" and amount <= 0:
        raise _invalid("totalAmount.value", "a closed (C) VA needs a positive amount")
    if trx_type == "O" and amount != 0:
        # The seed pages: an open VA is sent with totalAmount.value 0; the payer keys the amount.
        raise _invalid("totalAmount.value", "an open (O) VA is created with amount 0")


def _check_limits(trx_type: object, minimum: object, maximum: object) -> None:
    if minimum is None and maximum is None:
        return
    if trx_type == "C":
        path = f"{_CONFIG}.minAmount" if minimum is not None else f"{_CONFIG}.maxAmount"
        raise _invalid(
            path, "minAmount/maxAmount are only allowed with virtualAccountTrxType O or V"
        )
    if minimum is not None:
        _check_amount(minimum, f"{_CONFIG}.minAmount")
    if maximum is not None:
        _check_amount(maximum, f"{_CONFIG}.maxAmount")
        assert isinstance(maximum, Decimal)
        if maximum <= 0:
            raise _invalid(f"{_CONFIG}.maxAmount", "must be greater than 0")
        if isinstance(minimum, Decimal) and minimum > maximum:
            raise _invalid(f"{_CONFIG}.maxAmount", "must not be less than minAmount")


def _check_expiry(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise _invalid("expiredDate", "must be a timezone-aware datetime")


def _check_free_text(lines: object) -> None:
    if not isinstance(lines, tuple):
        raise _invalid("freeText", "must be a tuple of FreeText")
    for index, line in enumerate(lines):
        if not isinstance(line, FreeText):
            raise _invalid(f"freeText[{index}]", "must be a FreeText")
        _text(line.english, f"freeText[{index}].english", 64, _PRINTABLE)
        _text(line.indonesia, f"freeText[{index}].indonesia", 64, _PRINTABLE)


def _money(value: Decimal) -> dict[str, str]:
    return {"value": format_amount(value), "currency": "IDR"}


def _put(body: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        body[key] = value


# -- reading bodies (the fake DOKU's side); type and presence here, value rules in the classes --


def _object(document: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = document.get(key)
    if value is not None and not isinstance(value, dict):
        raise _invalid(path, "must be an object")
    return value


def _read_money(document: Mapping[str, Any], key: str, *, required: bool) -> Decimal | None:
    money = _object(document, key, key)
    if money is None:
        if required:
            raise _missing(f"{key}.value")
        return None
    value, currency = money.get("value"), money.get("currency")
    if value is None or value == "":
        raise _missing(f"{key}.value")
    if currency is None or currency == "":
        raise _missing(f"{key}.currency")
    if currency != "IDR":
        raise _invalid(f"{key}.currency", "must be IDR")
    try:
        return parse_amount(value)
    except ValueError as exc:
        raise _invalid(f"{key}.value", str(exc)) from None


def _read_limit(config: Mapping[str, Any] | None, key: str) -> Decimal | None:
    value = None if config is None else config.get(key)
    if value is None:
        return None
    try:
        return parse_amount(value)
    except ValueError as exc:
        raise _invalid(f"{_CONFIG}.{key}", str(exc)) from None


def _read_expiry(document: Mapping[str, Any]) -> datetime | None:
    value = document.get("expiredDate")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid("expiredDate", "must be a string")
    try:
        return datetime.strptime(value, _EXPIRY_FORMAT)
    except ValueError:
        raise _invalid("expiredDate", "must look like 2025-08-31T09:54:04+07:00") from None


def _check_va_in(document: Mapping[str, Any]) -> None:
    # The VA number is checked first so that a body wrong everywhere names it, as DOKU would.
    _check_va(
        document.get("partnerServiceId"),
        document.get("customerNo"),
        document.get("virtualAccountNo"),
    )


def _raw(document: Mapping[str, Any], key: str) -> Any:
    """A value as received; the class's own checks then name what is wrong with it."""
    return document.get(key)


def _channel(document: Mapping[str, Any]) -> Any:
    info = _object(document, "additionalInfo", "additionalInfo")
    if info is None:
        raise _missing("additionalInfo.channel")
    return info.get("channel")


@dataclass(frozen=True, slots=True)
class CheckStatusRequest:
    """Service 26: ask DOKU whether a VA was paid (DOKU advises waiting 60 s after payment)."""

    partner_service_id: str
    customer_no: str
    virtual_account_no: str
    inquiry_request_id: str | None = None
    payment_request_id: str | None = None
    name: str | None = None
    additional_info: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_va(self.partner_service_id, self.customer_no, self.virtual_account_no)
        _check_common(self.name, None, None, name_required=False)
        _text(self.inquiry_request_id, "inquiryRequestId", 128, required=False)
        _text(self.payment_request_id, "paymentRequestId", 128, required=False)
        if self.additional_info is not None and not isinstance(self.additional_info, Mapping):
            raise _invalid("additionalInfo", "must be an object")

    @classmethod
    def from_body(cls, document: Mapping[str, Any]) -> CheckStatusRequest:
        return cls(
            _raw(document, "partnerServiceId"),
            _raw(document, "customerNo"),
            _raw(document, "virtualAccountNo"),
            inquiry_request_id=_raw(document, "inquiryRequestId"),
            payment_request_id=_raw(document, "paymentRequestId"),
            name=_raw(document, "virtualAccountName"),
            additional_info=_object(document, "additionalInfo", "additionalInfo"),
        )

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "partnerServiceId": self.partner_service_id,
            "customerNo": self.customer_no,
            "virtualAccountNo": self.virtual_account_no,
        }
        _put(body, "virtualAccountName", self.name)
        _put(body, "inquiryRequestId", self.inquiry_request_id)
        _put(body, "paymentRequestId", self.payment_request_id)
        if self.additional_info is not None:
            body["additionalInfo"] = dict(self.additional_info)
        return body


@dataclass(frozen=True, slots=True)
class CreateVaRequest:
    """Service 27: register a VA at DOKU (DGPC/MGPC; not used for Direct Inquiry).

    ``trx_type`` ``"C"`` needs a positive ``amount``; ``"O"`` (open) is sent with amount 0;
    ``min_amount``/``max_amount`` only go with ``"O"``/``"V"``. ``expires_at`` must carry an
    offset and is sent in WIB (``2025-08-31T09:54:04+07:00``).
    """

    partner_service_id: str
    customer_no: str
    virtual_account_no: str
    name: str
    trx_id: str
    amount: Decimal
    channel: str
    trx_type: TrxType = "C"
    email: str | None = None
    phone: str | None = None
    expires_at: datetime | None = None
    #: DOKU's validator wants ``reusableStatus`` as a boolean on every create, so it is always sent.
    reusable: bool = False
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    free_text: tuple[FreeText, ...] = ()

    def __post_init__(self) -> None:
        _check_va(self.partner_service_id, self.customer_no, self.virtual_account_no)
        _check_common(self.name, self.email, self.phone, name_required=True)
        _text(self.trx_id, "trxId", 64)
        _check_amount(self.amount, "totalAmount.value")
        _text(self.channel, "additionalInfo.channel", 30)
        _check_trx_type(self.trx_type)
        _check_amount_for_type(self.trx_type, self.amount)
        _check_limits(self.trx_type, self.min_amount, self.max_amount)
        _check_expiry(self.expires_at)
        if not isinstance(self.reusable, bool):
            raise _invalid(f"{_CONFIG}.reusableStatus", "must be true or false")
        _check_free_text(self.free_text)

    @classmethod
    def from_body(cls, document: Mapping[str, Any]) -> CreateVaRequest:
        _check_va_in(document)
        info = _object(document, "additionalInfo", "additionalInfo")
        config = None if info is None else _object(info, "virtualAccountConfig", _CONFIG)
        reusable = False if config is None else config.get("reusableStatus", False)
        # DOKU's reference writes "freeText", its Python SDK "freeTexts": read either.
        lines = document.get("freeText", document.get("freeTexts")) or []
        if not isinstance(lines, list) or not all(isinstance(x, dict) for x in lines):
            raise _invalid("freeText", "must be a list of {english, indonesia}")
        amount = _read_money(document, "totalAmount", required=True)
        assert amount is not None
        return cls(
            _raw(document, "partnerServiceId"),
            _raw(document, "customerNo"),
            _raw(document, "virtualAccountNo"),
            name=_raw(document, "virtualAccountName"),
            trx_id=_raw(document, "trxId"),
            amount=amount,
            channel=_channel(document),
            trx_type=_raw(document, "virtualAccountTrxType"),
            email=_raw(document, "virtualAccountEmail"),
            phone=_raw(document, "virtualAccountPhone"),
            expires_at=_read_expiry(document),
            reusable=reusable,
            min_amount=_read_limit(config, "minAmount"),
            max_amount=_read_limit(config, "maxAmount"),
            free_text=tuple(FreeText(x.get("english"), x.get("indonesia")) for x in lines),
        )

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "partnerServiceId": self.partner_service_id,
            "customerNo": self.customer_no,
            "virtualAccountNo": self.virtual_account_no,
            "virtualAccountName": self.name,
        }
        _put(body, "virtualAccountEmail", self.email)
        _put(body, "virtualAccountPhone", self.phone)
        body["trxId"] = self.trx_id
        body["totalAmount"] = _money(self.amount)
        config: dict[str, Any] = {"reusableStatus": self.reusable}
        if self.min_amount is not None:
            config["minAmount"] = format_amount(self.min_amount)
        if self.max_amount is not None:
            config["maxAmount"] = format_amount(self.max_amount)
        body["additionalInfo"] = {"channel": self.channel, "virtualAccountConfig": config}
        body["virtualAccountTrxType"] = self.trx_type
        if self.expires_at is not None:
            body["expiredDate"] = format_timestamp(self.expires_at)
        if self.free_text:
            body["freeText"] = [
                {"english": t.english, "indonesia": t.indonesia} for t in self.free_text
            ]
        return body


@dataclass(frozen=True, slots=True)
class UpdateVaRequest:
    """Service 28: change a registered VA; ``None`` fields are left out (unchanged).

    DOKU identifies the VA by the number and ``trx_id``. ``status`` deactivates/reactivates it;
    DOKU's validator requires ``status`` whenever ``min_amount``/``max_amount`` are sent.
    """

    partner_service_id: str
    customer_no: str
    virtual_account_no: str
    trx_id: str
    channel: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    amount: Decimal | None = None
    trx_type: TrxType | None = None
    expires_at: datetime | None = None
    status: VaStatus | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None

    def __post_init__(self) -> None:
        _check_va(self.partner_service_id, self.customer_no, self.virtual_account_no)
        _check_common(self.name, self.email, self.phone, name_required=False)
        _text(self.trx_id, "trxId", 64)
        _text(self.channel, "additionalInfo.channel", 30)
        if self.amount is not None:
            _check_amount(self.amount, "totalAmount.value")
        if self.trx_type is not None:
            _check_trx_type(self.trx_type)
            if self.amount is not None:
                _check_amount_for_type(self.trx_type, self.amount)
        _check_limits(self.trx_type, self.min_amount, self.max_amount)
        has_limits = self.min_amount is not None or self.max_amount is not None
        if self.status is None and has_limits:
            raise _missing(f"{_CONFIG}.status")
        if self.status is not None and self.status not in ("ACTIVE", "INACTIVE"):
            raise _invalid(f"{_CONFIG}.status", "must be ACTIVE or INACTIVE")
        _check_expiry(self.expires_at)

    @classmethod
    def from_body(cls, document: Mapping[str, Any]) -> UpdateVaRequest:
        _check_va_in(document)
        info = _object(document, "additionalInfo", "additionalInfo")
        config = None if info is None else _object(info, "virtualAccountConfig", _CONFIG)
        return cls(
            _raw(document, "partnerServiceId"),
            _raw(document, "customerNo"),
            _raw(document, "virtualAccountNo"),
            trx_id=_raw(document, "trxId"),
            channel=_channel(document),
            name=_raw(document, "virtualAccountName"),
            email=_raw(document, "virtualAccountEmail"),
            phone=_raw(document, "virtualAccountPhone"),
            amount=_read_money(document, "totalAmount", required=False),
            trx_type=_raw(document, "virtualAccountTrxType"),
            expires_at=_read_expiry(document),
            status=None if config is None else config.get("status"),
            min_amount=_read_limit(config, "minAmount"),
            max_amount=_read_limit(config, "maxAmount"),
        )

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "partnerServiceId": self.partner_service_id,
            "customerNo": self.customer_no,
            "virtualAccountNo": self.virtual_account_no,
        }
        _put(body, "virtualAccountName", self.name)
        _put(body, "virtualAccountEmail", self.email)
        _put(body, "virtualAccountPhone", self.phone)
        body["trxId"] = self.trx_id
        if self.amount is not None:
            body["totalAmount"] = _money(self.amount)
        info: dict[str, Any] = {"channel": self.channel}
        config: dict[str, Any] = {}
        _put(config, "status", self.status)
        if self.min_amount is not None:
            config["minAmount"] = format_amount(self.min_amount)
        if self.max_amount is not None:
            config["maxAmount"] = format_amount(self.max_amount)
        if config:
            info["virtualAccountConfig"] = config
        body["additionalInfo"] = info
        _put(body, "virtualAccountTrxType", self.trx_type)
        if self.expires_at is not None:
            body["expiredDate"] = format_timestamp(self.expires_at)
        return body


@dataclass(frozen=True, slots=True)
class DeleteVaRequest:
    """Service 31: remove a registered VA (sent as ``DELETE`` with a JSON body)."""

    partner_service_id: str
    customer_no: str
    virtual_account_no: str
    trx_id: str
    channel: str

    def __post_init__(self) -> None:
        _check_va(self.partner_service_id, self.customer_no, self.virtual_account_no)
        _text(self.trx_id, "trxId", 64)
        _text(self.channel, "additionalInfo.channel", 30)

    @classmethod
    def from_body(cls, document: Mapping[str, Any]) -> DeleteVaRequest:
        _check_va_in(document)
        return cls(
            _raw(document, "partnerServiceId"),
            _raw(document, "customerNo"),
            _raw(document, "virtualAccountNo"),
            trx_id=_raw(document, "trxId"),
            channel=_channel(document),
        )

    def to_body(self) -> dict[str, Any]:
        return {
            "partnerServiceId": self.partner_service_id,
            "customerNo": self.customer_no,
            "virtualAccountNo": self.virtual_account_no,
            "trxId": self.trx_id,
            "additionalInfo": {"channel": self.channel},
        }


# The answers' types live in va_results; re-exported so callers need one import.
from .va_results import CheckStatusResult, VaResult, is_paid  # noqa: E402
