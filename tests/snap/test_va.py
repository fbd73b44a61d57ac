"""Request rules and bodies of DOKU's check status and VA management (gateway/snap/va.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from gateway.snap.codes import Case
from gateway.snap.errors import FieldError
from gateway.snap.models import FreeText
from gateway.snap.va import (
    CheckStatusRequest,
    CheckStatusResult,
    CreateVaRequest,
    DeleteVaRequest,
    UpdateVaRequest,
    VaResult,
    is_paid,
    pad_partner_service_id,
)

PARTNER = "   88899"
CUSTOMER = "12345678901234567890"
VA_NO = PARTNER + CUSTOMER
CHANNEL = "VIRTUAL_ACCOUNT_BRI"
EXPIRES = datetime(2025, 8, 31, 2, 54, 4, tzinfo=UTC)


def create(**changes: Any) -> CreateVaRequest:
    fields: dict[str, Any] = {
        "partner_service_id": PARTNER,
        "customer_no": CUSTOMER,
        "virtual_account_no": VA_NO,
        "name": "Budi Santoso",
        "trx_id": "INV-0001",
        "amount": Decimal("25000"),
        "channel": CHANNEL,
    }
    fields.update(changes)
    return CreateVaRequest(**fields)


def update(**changes: Any) -> UpdateVaRequest:
    fields: dict[str, Any] = {
        "partner_service_id": PARTNER,
        "customer_no": CUSTOMER,
        "virtual_account_no": VA_NO,
        "trx_id": "INV-0001",
        "channel": CHANNEL,
    }
    fields.update(changes)
    return UpdateVaRequest(**fields)


def refused(build: Any, field: str, case: Case = Case.INVALID_FIELD_FORMAT) -> FieldError:
    with pytest.raises(FieldError) as caught:
        build()
    assert caught.value.field == field
    assert caught.value.case is case
    return caught.value


# -- bodies ------------------------------------------------------------------------------------


def test_create_body_in_dokus_key_order_with_amounts_as_strings() -> None:
    request = create(
        trx_type="V",
        email="budi@example.co.id",
        phone="628123456789",
        expires_at=EXPIRES,
        reusable=True,
        min_amount=Decimal("10000"),
        max_amount=Decimal("5000000.5"),
        free_text=(FreeText("Free text", "Tulisan Bebas"),),
    )
    body = request.to_body()
    assert list(body) == [
        "partnerServiceId",
        "customerNo",
        "virtualAccountNo",
        "virtualAccountName",
        "virtualAccountEmail",
        "virtualAccountPhone",
        "trxId",
        "totalAmount",
        "additionalInfo",
        "virtualAccountTrxType",
        "expiredDate",
        "freeText",
    ]
    assert body["partnerServiceId"] == "   88899"  # padding kept verbatim
    assert body["totalAmount"] == {"value": "25000.00", "currency": "IDR"}
    assert body["additionalInfo"] == {
        "channel": CHANNEL,
        "virtualAccountConfig": {
            "reusableStatus": True,
            "minAmount": "10000.00",
            "maxAmount": "5000000.50",
        },
    }
    # A UTC instant is sent in WIB, DOKU's strptime form (no fraction, offset present).
    assert body["expiredDate"] == "2025-08-31T09:54:04+07:00"
    assert body["freeText"] == [{"english": "Free text", "indonesia": "Tulisan Bebas"}]
    # Only strings and booleans on the wire: no float can reach the signature.
    assert '"25000.00"' in json.dumps(body)


def test_create_body_leaves_out_absent_optionals_but_always_sends_reusable_status() -> None:
    body = create().to_body()
    assert "virtualAccountEmail" not in body
    assert "expiredDate" not in body
    assert "freeText" not in body
    assert body["additionalInfo"] == {
        "channel": CHANNEL,
        "virtualAccountConfig": {"reusableStatus": False},
    }
    assert body["virtualAccountTrxType"] == "C"


def test_open_amount_is_sent_as_zero_with_two_decimals() -> None:
    body = create(trx_type="O", amount=Decimal(0), max_amount=Decimal("100000")).to_body()
    assert body["totalAmount"] == {"value": "0.00", "currency": "IDR"}
    assert body["virtualAccountTrxType"] == "O"


def test_check_status_body() -> None:
    request = CheckStatusRequest(PARTNER, CUSTOMER, VA_NO, payment_request_id="PAY-1")
    assert request.to_body() == {
        "partnerServiceId": PARTNER,
        "customerNo": CUSTOMER,
        "virtualAccountNo": VA_NO,
        "paymentRequestId": "PAY-1",
    }
    full = CheckStatusRequest(
        PARTNER, CUSTOMER, VA_NO, "INQ-1", "PAY-1", "Budi", {"channel": CHANNEL}
    ).to_body()
    assert list(full) == [
        "partnerServiceId",
        "customerNo",
        "virtualAccountNo",
        "virtualAccountName",
        "inquiryRequestId",
        "paymentRequestId",
        "additionalInfo",
    ]


def test_update_body_sends_only_what_changes() -> None:
    body = update(amount=Decimal("30000.10"), status="INACTIVE").to_body()
    assert body == {
        "partnerServiceId": PARTNER,
        "customerNo": CUSTOMER,
        "virtualAccountNo": VA_NO,
        "trxId": "INV-0001",
        "totalAmount": {"value": "30000.10", "currency": "IDR"},
        "additionalInfo": {"channel": CHANNEL, "virtualAccountConfig": {"status": "INACTIVE"}},
    }
    assert list(update(trx_type="O", expires_at=EXPIRES, name="X").to_body()) == [
        "partnerServiceId",
        "customerNo",
        "virtualAccountNo",
        "virtualAccountName",
        "trxId",
        "additionalInfo",
        "virtualAccountTrxType",
        "expiredDate",
    ]


def test_delete_body() -> None:
    request = DeleteVaRequest(PARTNER, CUSTOMER, VA_NO, "INV-0001", CHANNEL)
    assert list(request.to_body()) == [
        "partnerServiceId",
        "customerNo",
        "virtualAccountNo",
        "trxId",
        "additionalInfo",
    ]
    assert request.to_body()["additionalInfo"] == {"channel": CHANNEL}


def test_pad_partner_service_id() -> None:
    assert pad_partner_service_id("88899") == "   88899"
    assert pad_partner_service_id("12345678") == "12345678"


# -- VA composition (spec §11) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "partner",
    [
        "88899",
        "  88899",
        "    88899",
        "   8889a",
        "   ８８８99",
        "\u00a0\u00a0\u00a088899",
        "123456789",
    ],
)
def test_partner_service_id_is_eight_characters_of_padding_and_digits(partner: str) -> None:
    error = refused(lambda: CheckStatusRequest(partner, "1", partner + "1"), "partnerServiceId")
    assert "8 characters" in str(error)


def test_partner_service_id_of_eight_digits_needs_no_padding() -> None:
    request = CheckStatusRequest("12345678", "1", "123456781")
    assert request.to_body()["partnerServiceId"] == "12345678"


@pytest.mark.parametrize("customer", ["123456789012345678901", "12a4", "-1", "١٢٣"])
def test_customer_no_is_at_most_twenty_digits(customer: str) -> None:
    refused(lambda: CheckStatusRequest(PARTNER, customer, PARTNER + customer), "customerNo")


@pytest.mark.parametrize(
    "va_no", ["8889912345678901234567890", "   88899" + "0" * 20, "8889912345678901234567890   "]
)
def test_va_number_is_partner_service_id_plus_customer_no_verbatim(va_no: str) -> None:
    error = refused(lambda: CheckStatusRequest(PARTNER, CUSTOMER, va_no), "virtualAccountNo")
    assert "partnerServiceId + customerNo" in error.reason


@pytest.mark.parametrize("field", ["partner_service_id", "customer_no", "virtual_account_no"])
def test_missing_va_fields_are_missing_not_invalid(field: str) -> None:
    names = {
        "partner_service_id": "partnerServiceId",
        "customer_no": "customerNo",
        "virtual_account_no": "virtualAccountNo",
    }
    values = {"partner_service_id": PARTNER, "customer_no": CUSTOMER, "virtual_account_no": VA_NO}
    values[field] = ""
    refused(
        lambda: CheckStatusRequest(
            values["partner_service_id"], values["customer_no"], values["virtual_account_no"]
        ),
        names[field],
        Case.MISSING_MANDATORY_FIELD,
    )


def test_check_status_ids_are_limited_to_128() -> None:
    refused(
        lambda: CheckStatusRequest(PARTNER, CUSTOMER, VA_NO, inquiry_request_id="x" * 129),
        "inquiryRequestId",
    )
    refused(
        lambda: CheckStatusRequest(PARTNER, CUSTOMER, VA_NO, payment_request_id=""),
        "paymentRequestId",
    )


# -- create rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("trx_type", ["X", "c", "CO"])
def test_trx_type_is_c_o_or_v(trx_type: str) -> None:
    refused(lambda: create(trx_type=trx_type), "virtualAccountTrxType")


def test_closed_va_needs_a_positive_amount() -> None:
    refused(lambda: create(amount=Decimal(0)), "totalAmount.value")


def test_open_va_is_created_with_amount_zero() -> None:
    refused(lambda: create(trx_type="O", amount=Decimal("100")), "totalAmount.value")
    assert create(trx_type="O", amount=Decimal("0.00")).amount == 0


@pytest.mark.parametrize("amount", [Decimal("10.005"), Decimal("-1"), Decimal("1e16"), 25000.0])
def test_amount_must_be_a_two_decimal_decimal(amount: Any) -> None:
    refused(lambda: create(amount=amount), "totalAmount.value")


def test_limits_only_with_open_or_variable_types() -> None:
    error = refused(
        lambda: create(min_amount=Decimal("1000")),
        "additionalInfo.virtualAccountConfig.minAmount",
    )
    assert "O or V" in error.reason
    refused(
        lambda: create(max_amount=Decimal("1000")),
        "additionalInfo.virtualAccountConfig.maxAmount",
    )
    assert create(trx_type="V", min_amount=Decimal("1000")).min_amount == Decimal("1000")


def test_min_must_not_exceed_max_and_max_must_be_positive() -> None:
    refused(
        lambda: create(trx_type="V", min_amount=Decimal("2000"), max_amount=Decimal("1000")),
        "additionalInfo.virtualAccountConfig.maxAmount",
    )
    refused(
        lambda: create(trx_type="O", amount=Decimal(0), max_amount=Decimal(0)),
        "additionalInfo.virtualAccountConfig.maxAmount",
    )
    equal = create(trx_type="V", min_amount=Decimal("1000"), max_amount=Decimal("1000"))
    assert equal.to_body()["additionalInfo"]["virtualAccountConfig"]["maxAmount"] == "1000.00"


def test_expiry_needs_an_offset_and_keeps_a_wib_one() -> None:
    refused(lambda: create(expires_at=datetime(2025, 8, 31, 9, 54, 4)), "expiredDate")
    wib = timezone(timedelta(hours=7))
    body = create(expires_at=datetime(2025, 8, 31, 9, 54, 4, 999, tzinfo=wib)).to_body()
    assert body["expiredDate"] == "2025-08-31T09:54:04+07:00"


@pytest.mark.parametrize("name", ["Budi Śantoso", "Budi\nSantoso", "Budi;DROP", "", "x" * 256])
def test_virtual_account_name_charset(name: str) -> None:
    case = Case.MISSING_MANDATORY_FIELD if name == "" else Case.INVALID_FIELD_FORMAT
    refused(lambda: create(name=name), "virtualAccountName", case)


def test_virtual_account_name_allows_dokus_punctuation() -> None:
    assert create(name="Jl. A/B-12, O'Neil +62=_:@50%").name.startswith("Jl.")


@pytest.mark.parametrize("email", ["budi", "budi@", "budi@example", "bu di@example.com"])
def test_email_rule(email: str) -> None:
    refused(lambda: create(email=email), "virtualAccountEmail")


@pytest.mark.parametrize("phone", ["12345678", "0812-3456-789", "+62abc456789", "1" * 31])
def test_phone_rule(phone: str) -> None:
    refused(lambda: create(phone=phone), "virtualAccountPhone")


def test_phone_accepts_nine_to_thirty_digits() -> None:
    assert create(phone="+628123456789").phone == "+628123456789"
    assert create(phone="1" * 30).phone == "1" * 30


def test_trx_id_is_one_to_sixty_four_characters() -> None:
    refused(lambda: create(trx_id="x" * 65), "trxId")
    refused(lambda: create(trx_id=""), "trxId", Case.MISSING_MANDATORY_FIELD)
    assert create(trx_id="x" * 64).trx_id == "x" * 64


def test_channel_is_an_open_string_within_thirty_characters() -> None:
    assert create(channel="VIRTUAL_ACCOUNT_NEWBANK").channel == "VIRTUAL_ACCOUNT_NEWBANK"
    refused(lambda: create(channel="V" * 31), "additionalInfo.channel")
    refused(lambda: create(channel=""), "additionalInfo.channel", Case.MISSING_MANDATORY_FIELD)


def test_field_error_names_the_field_and_the_reason() -> None:
    error = refused(lambda: create(trx_type="C", amount=Decimal(0)), "totalAmount.value")
    assert str(error) == "totalAmount.value: a closed (C) VA needs a positive amount"


# -- update rules ------------------------------------------------------------------------------


def test_update_limits_need_a_status() -> None:
    refused(
        lambda: update(max_amount=Decimal("1000")),
        "additionalInfo.virtualAccountConfig.status",
        Case.MISSING_MANDATORY_FIELD,
    )
    body = update(status="ACTIVE", max_amount=Decimal("1000")).to_body()
    assert body["additionalInfo"]["virtualAccountConfig"] == {
        "status": "ACTIVE",
        "maxAmount": "1000.00",
    }


def test_update_status_and_type_rules() -> None:
    refused(lambda: update(status="PAUSED"), "additionalInfo.virtualAccountConfig.status")
    refused(
        lambda: update(trx_type="C", status="ACTIVE", min_amount=Decimal("1")),
        "additionalInfo.virtualAccountConfig.minAmount",
    )
    refused(lambda: update(trx_type="C", amount=Decimal(0)), "totalAmount.value")
    refused(lambda: update(partner_service_id="88899"), "partnerServiceId")


# -- reading bodies (what the fake DOKU does) ------------------------------------------------------


def test_create_from_its_own_body_round_trips() -> None:
    request = create(
        trx_type="V",
        email="budi@example.com",
        expires_at=datetime(2025, 8, 31, 9, 54, 4, tzinfo=timezone(timedelta(hours=7))),
        reusable=True,
        min_amount=Decimal("1.50"),
        free_text=(FreeText("a", "b"),),
    )
    parsed = CreateVaRequest.from_body(json.loads(json.dumps(request.to_body())))
    assert parsed == request
    assert parsed.to_body() == request.to_body()


def test_update_and_delete_from_their_own_bodies_round_trip() -> None:
    request = update(amount=Decimal("5"), status="ACTIVE", min_amount=Decimal("1"), trx_type="V")
    assert UpdateVaRequest.from_body(request.to_body()) == request
    delete = DeleteVaRequest(PARTNER, CUSTOMER, VA_NO, "INV-1", CHANNEL)
    assert DeleteVaRequest.from_body(delete.to_body()) == delete


@pytest.mark.parametrize(
    ("change", "field", "case"),
    [
        ({"partnerServiceId": None}, "partnerServiceId", Case.MISSING_MANDATORY_FIELD),
        ({"customerNo": 12345}, "customerNo", Case.INVALID_FIELD_FORMAT),
        ({"trxId": None}, "trxId", Case.MISSING_MANDATORY_FIELD),
        ({"totalAmount": {"value": "25000", "currency": "IDR"}}, "totalAmount.value", None),
        ({"totalAmount": {"value": "25000.00", "currency": "USD"}}, "totalAmount.currency", None),
        ({"totalAmount": {"value": "25000.00"}}, "totalAmount.currency", "missing"),
        ({"totalAmount": None}, "totalAmount.value", "missing"),
        ({"expiredDate": "2025-08-31 09:54:04"}, "expiredDate", None),
        ({"additionalInfo": {}}, "additionalInfo.channel", "missing"),
        ({"additionalInfo": "BRI"}, "additionalInfo", None),
        ({"virtualAccountTrxType": 1}, "virtualAccountTrxType", None),
    ],
)
def test_create_from_body_names_the_bad_field(
    change: dict[str, Any], field: str, case: Case | str | None
) -> None:
    document = create().to_body()
    document.update(change)
    expected = (
        Case.MISSING_MANDATORY_FIELD
        if case in ("missing", Case.MISSING_MANDATORY_FIELD)
        else Case.INVALID_FIELD_FORMAT
    )
    refused(lambda: CreateVaRequest.from_body(document), field, expected)


def test_create_from_body_accepts_the_sdks_free_texts_key() -> None:
    document = create().to_body()
    document["freeTexts"] = [{"english": "Hi", "indonesia": "Halo"}]
    assert CreateVaRequest.from_body(document).free_text == (FreeText("Hi", "Halo"),)


def test_from_body_checks_the_va_number_first() -> None:
    refused(
        lambda: DeleteVaRequest.from_body({"customerNo": "1"}),
        "partnerServiceId",
        Case.MISSING_MANDATORY_FIELD,
    )


# -- DOKU's answers ----------------------------------------------------------------------------

PENDING = FreeText("Pending", "Belum Terbayar")


@pytest.mark.parametrize(
    ("status", "reason", "amount", "paid"),
    [
        ("00", None, None, True),
        ("01", FreeText("Success", "Sukses"), Decimal(5), False),  # the status decides
        (None, FreeText("Success", "Sukses"), Decimal(0), True),
        (None, PENDING, Decimal(100), False),  # the reason decides over the amount
        (None, FreeText("", "Sukses"), None, True),
        (None, None, Decimal("25000.00"), True),
        (None, None, Decimal("0"), False),
        (None, None, None, False),
        (None, FreeText("Expired", "Kedaluwarsa"), None, False),
    ],
)
def test_is_paid(
    status: str | None, reason: FreeText | None, amount: Decimal | None, paid: bool
) -> None:
    assert is_paid(status, reason, amount) is paid


def test_check_status_result_from_dokus_answer() -> None:
    body = {
        "responseCode": "2002600",
        "responseMessage": "Successful",
        "virtualAccountData": {
            "paymentFlagReason": {"english": "Success", "indonesia": "Sukses"},
            "partnerServiceId": PARTNER,
            "customerNo": CUSTOMER,
            "virtualAccountNo": VA_NO,
            "inquiryRequestId": "INQ-1",
            "paymentRequestId": "PAY-1",
            "trxId": "INV-1",
            "paidAmount": {"value": "25000.00", "currency": "IDR"},
            "billDetails": [{"billAmount": {"value": "25000.00", "currency": "IDR"}}],
        },
        "additionalInfo": {"acquirer": "BRI"},
    }
    result = CheckStatusResult.from_body(body)
    assert result.paid is True
    assert result.paid_amount == Decimal("25000.00")
    assert isinstance(result.paid_amount, Decimal)
    assert (result.trx_id, result.payment_request_id, result.inquiry_request_id) == (
        "INV-1",
        "PAY-1",
        "INQ-1",
    )
    assert result.virtual_account_no == VA_NO
    assert result.body == body


def test_check_status_result_reads_a_flag_status_in_additional_info() -> None:
    body = {
        "responseCode": "2002600",
        "virtualAccountData": {
            "additionalInfo": {"paymentFlagStatus": "01"},
            "paidAmount": {"value": 25000, "currency": "IDR"},
        },
    }
    result = CheckStatusResult.from_body(body)
    assert result.payment_flag_status == "01"
    assert result.paid is False
    assert result.paid_amount == Decimal(25000)


@pytest.mark.parametrize(
    "body",
    [
        {"responseMessage": "no code"},
        {"responseCode": "2002600", "virtualAccountData": []},
        {"responseCode": "2002600", "virtualAccountData": {"paidAmount": {"value": "lots"}}},
        {"responseCode": "2002600", "virtualAccountData": {"paidAmount": {"value": 1.5}}},
        {"responseCode": "2002600", "virtualAccountData": {"trxId": ["INV"]}},
    ],
)
def test_check_status_result_refuses_foreign_shapes(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CheckStatusResult.from_body(body)


def test_va_result_carries_dokus_number_and_how_to_pay() -> None:
    # DOKU-generated codes (DGPC): DOKU completes the number the merchant sent.
    body = {
        "responseCode": "2002700",
        "responseMessage": "Successful",
        "virtualAccountData": {
            "partnerServiceId": "   12362",
            "customerNo": "60000000000000000001",
            "virtualAccountNo": "   1236260000000000000000001",
            "trxId": "INV-1",
            "additionalInfo": {
                "channel": "VIRTUAL_ACCOUNT_BRI",
                "howToPayPage": "https://example.test/page",
                "howToPayApi": "https://example.test/api",
            },
        },
    }
    result = VaResult.from_body(body)
    assert result.virtual_account_no == "   1236260000000000000000001"
    assert result.how_to_pay_page == "https://example.test/page"
    assert result.how_to_pay_api == "https://example.test/api"
    assert result.trx_id == "INV-1"
    with pytest.raises(ValueError):
        VaResult.from_body({"responseCode": "2002700", "virtualAccountData": "x"})
