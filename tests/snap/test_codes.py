from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from gateway.snap.codes import Case, Service, response_code


@pytest.mark.parametrize(("case", "service"), list(itertools.product(Case, Service)))
def test_http_status_is_the_first_three_digits(case: Case, service: Service) -> None:
    code = response_code(case, service)
    assert len(code.code) == 7 and code.code.isascii() and code.code.isdigit()
    assert code.code[:3] == str(code.http_status)
    assert code.http_status == case.http_status
    assert code.code[3:5] == f"{service.value:02d}"
    assert code.code[5:] == case.value[1]
    assert code.message == case.message


@pytest.mark.parametrize(
    ("case", "service", "expected", "status", "message"),
    [
        (Case.SUCCESS, Service.INQUIRY, "2002400", 200, "Successful"),
        (Case.UNAUTHORIZED, Service.INQUIRY, "4012400", 401, "Unauthorized"),
        (Case.INVALID_TOKEN, Service.INQUIRY, "4012401", 401, "Invalid Token (B2B)"),
        (Case.UNAUTHORIZED, Service.ACCESS_TOKEN, "4017300", 401, "Unauthorized"),
        (Case.BILL_NOT_FOUND, Service.INQUIRY, "4042412", 404, "Bill not found"),
        (Case.BILL_PAID, Service.INQUIRY, "4042414", 404, "Bill has been paid"),
        (Case.BILL_EXPIRED, Service.INQUIRY, "4042419", 404, "Bill expired"),
        (Case.CONFLICT, Service.INQUIRY, "4092400", 409, "Conflict"),
        (Case.TIMEOUT, Service.INQUIRY, "5042400", 504, "Timeout"),
        (Case.SUCCESS, Service.ACCESS_TOKEN, "2007300", 200, "Successful"),
        (Case.INVALID_FIELD_FORMAT, Service.INQUIRY, "4002401", 400, "Invalid Field Format"),
        (Case.MISSING_MANDATORY_FIELD, Service.INQUIRY, "4002402", 400, "Missing Mandatory Field"),
        (Case.INVALID_FIELD_FORMAT, Service.ACCESS_TOKEN, "4007301", 400, "Invalid Field Format"),
        (Case.INTERNAL_ERROR, Service.INQUIRY, "5002401", 500, "Internal Server Error"),
        (Case.SUCCESS, Service.PAYMENT, "2002500", 200, "Successful"),
        (Case.SUCCESS, Service.CHECK_STATUS, "2002600", 200, "Successful"),
    ],
)
def test_spot_checks(
    case: Case, service: Service, expected: str, status: int, message: str
) -> None:
    code = response_code(case, service)
    assert (code.code, code.http_status, code.message) == (expected, status, message)


def test_token_success_matches_the_sdk_response(vectors: dict[str, Any]) -> None:
    sdk = vectors["merchant_issued_jwt"]["token_response_body_sdk_builds"]
    code = response_code(Case.SUCCESS, Service.ACCESS_TOKEN)
    assert (code.code, code.message) == (sdk["responseCode"], sdk["responseMessage"])


def test_every_case_is_distinct() -> None:
    # Enum members with equal values silently become aliases; each (status, case) must be unique.
    pairs = [(case.http_status, case.value[1]) for case in Case]
    assert len(pairs) == len(set(pairs)) == len(Case.__members__)


def test_service_codes_match_the_spec() -> None:
    assert {s.name: s.value for s in Service} == {
        "ACCESS_TOKEN": 73,
        "INQUIRY": 24,
        "PAYMENT": 25,
        "CHECK_STATUS": 26,
        "CREATE_VA": 27,
        "UPDATE_VA": 28,
        "DELETE_VA": 31,
    }


def test_response_code_is_frozen() -> None:
    code = response_code(Case.SUCCESS, Service.INQUIRY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        code.code = "2002500"  # type: ignore[misc]
    assert code.code == "2002400"
