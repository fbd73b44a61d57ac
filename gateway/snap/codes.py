"""SNAP response codes (spec §13): ``HHH`` HTTP status + ``SS`` service + ``CC`` case.

Every error answer the gateway sends is built from :class:`Case` and a :class:`Service`, so the
HTTP status always equals the first three digits of ``responseCode``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Case", "ResponseCode", "Service", "response_code"]


class Service(enum.IntEnum):
    """SNAP service codes used in this integration."""

    ACCESS_TOKEN = 73
    INQUIRY = 24
    PAYMENT = 25
    CHECK_STATUS = 26
    CREATE_VA = 27
    UPDATE_VA = 28
    DELETE_VA = 31


class Case(enum.Enum):
    """BI case codes: value is (HTTP status, case code, message template)."""

    SUCCESS = (200, "00", "Successful")
    BAD_REQUEST = (400, "00", "Bad Request")
    INVALID_FIELD_FORMAT = (400, "01", "Invalid Field Format")
    MISSING_MANDATORY_FIELD = (400, "02", "Missing Mandatory Field")
    UNAUTHORIZED = (401, "00", "Unauthorized")
    INVALID_TOKEN = (401, "01", "Invalid Token (B2B)")
    TOKEN_NOT_FOUND = (401, "03", "Token Not Found (B2B)")
    TRANSACTION_NOT_PERMITTED = (403, "15", "Transaction Not Permitted")
    INVALID_TRANSACTION_STATUS = (404, "00", "Invalid Transaction Status")
    TRANSACTION_NOT_FOUND = (404, "01", "Transaction Not Found")
    VIRTUAL_ACCOUNT_NOT_FOUND = (404, "11", "Invalid Virtual Account")
    BILL_NOT_FOUND = (404, "12", "Bill not found")
    INVALID_AMOUNT = (404, "13", "Invalid Amount")
    BILL_PAID = (404, "14", "Bill has been paid")
    INCONSISTENT_REQUEST = (404, "18", "Inconsistent Request")
    BILL_EXPIRED = (404, "19", "Bill expired")
    CONFLICT = (409, "00", "Conflict")
    GENERAL_ERROR = (500, "00", "General Error")
    INTERNAL_ERROR = (500, "01", "Internal Server Error")
    EXTERNAL_ERROR = (500, "02", "External Server Error")
    TIMEOUT = (504, "00", "Timeout")

    @property
    def http_status(self) -> int:
        return self.value[0]

    @property
    def message(self) -> str:
        return self.value[2]


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """A concrete seven-digit code with its HTTP status and default message."""

    code: str
    http_status: int
    message: str


def response_code(case: Case, service: Service) -> ResponseCode:
    """Compose the seven-digit code for ``case`` in ``service`` (e.g. ``4012400``)."""
    status, case_code, message = case.value
    return ResponseCode(f"{status}{service.value:02d}{case_code}", status, message)
