from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from gateway.exceptions import ResolverError
from gateway.snap.codes import Case
from gateway.snap.errors import SnapError
from gateway.snap.inquiry import bill_template, parse_inquiry, render_bill, validate_bill
from gateway.snap.models import Bill, FreeText, Inquiry
from gateway.snap.timestamps import WIB

AMOUNT = re.compile(r"^\d{1,16}\.\d{2}$", re.ASCII)


@pytest.fixture
def body(vectors: dict[str, Any]) -> dict[str, Any]:
    """The inquiry body of spec §15.3 (padded partnerServiceId, numeric channelCode)."""
    document: dict[str, Any] = copy.deepcopy(vectors["symmetric_signature"]["request_body_object"])
    return document


def _without(document: dict[str, Any], path: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    target = changed
    for key in parents:
        target = target[key]
    del target[last]
    return changed


def _with(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    target = changed
    for key in parents:
        target = target[key]
    target[last] = value
    return changed


def _refusal(document: dict[str, Any], **options: Any) -> SnapError:
    with pytest.raises(SnapError) as caught:
        parse_inquiry(document, **options)
    return caught.value


def _bill(**fields: Any) -> Bill:
    values: dict[str, Any] = {"name": "Budi Santoso", "amount": Decimal("25000")}
    values.update(fields)
    return Bill(**values)


def _values(document: Any) -> Iterator[Any]:
    if isinstance(document, dict):
        for value in document.values():
            yield value
            yield from _values(value)
    elif isinstance(document, list):
        for item in document:
            yield from _values(item)


# parse_inquiry: what it returns ---------------------------------------------------------------


def test_parse_keeps_every_string_verbatim(body: dict[str, Any]) -> None:
    inquiry = parse_inquiry(body)
    assert inquiry.partner_service_id == "   88899"
    assert inquiry.customer_no == "12345678901234567890"
    assert inquiry.virtual_account_no == "   8889912345678901234567890"
    assert inquiry.inquiry_request_id == "abcdef-123456-abcdef"
    assert inquiry.channel == "VIRTUAL_ACCOUNT_BTN"
    assert inquiry.trx_date_init == "2024-05-01T10:15:29+07:00"
    assert inquiry.language == "ID"


def test_parse_strips_spaces_only_from_the_payment_code(body: dict[str, Any]) -> None:
    inquiry = parse_inquiry(body)
    assert inquiry.payment_code == "8889912345678901234567890"
    assert inquiry.partner_prefix == "88899"
    assert inquiry.partner_service_id == "   88899"


def test_parse_exposes_the_body_read_only(body: dict[str, Any]) -> None:
    inquiry = parse_inquiry(body)
    assert dict(inquiry.body) == body
    with pytest.raises(TypeError):
        inquiry.body["customerNo"] = "1"  # type: ignore[index]
    body["customerNo"] = "changed after parsing"
    assert inquiry.body["customerNo"] == "12345678901234567890"


@pytest.mark.parametrize(
    ("partner", "customer", "va", "payment_code"),
    [
        ("78896", "1220023342200", "788961220023342200", "788961220023342200"),  # BRI/BTN sample
        (" 88899", "12345", " 8889912345", "8889912345"),  # Mandiri sample: one space
        ("12345678", "1", "123456781", "123456781"),
        ("       1", "2", "       12", "12"),
    ],
)
def test_parse_accepts_any_padding_and_keeps_it(
    body: dict[str, Any], partner: str, customer: str, va: str, payment_code: str
) -> None:
    document = body | {"partnerServiceId": partner, "customerNo": customer, "virtualAccountNo": va}
    inquiry = parse_inquiry(document)
    assert (inquiry.partner_service_id, inquiry.customer_no, inquiry.virtual_account_no) == (
        partner,
        customer,
        va,
    )
    assert inquiry.payment_code == payment_code


def test_parse_needs_only_the_mandatory_fields(body: dict[str, Any]) -> None:
    for optional in ("trxDateInit", "channelCode", "language"):
        body = _without(body, optional)
    inquiry = parse_inquiry(body)
    assert (inquiry.trx_date_init, inquiry.language) == (None, None)
    assert inquiry.payment_code == "8889912345678901234567890"


@pytest.mark.parametrize("channel_code", [6011, "6011", 0, "0"])
def test_parse_accepts_channel_code_as_number_or_string(
    body: dict[str, Any], channel_code: int | str
) -> None:
    assert parse_inquiry(_with(body, "channelCode", channel_code)).body["channelCode"] == (
        channel_code
    )


def test_parse_accepts_an_amount_object(body: dict[str, Any]) -> None:
    amount = {"value": "25000.00", "currency": "IDR"}
    assert parse_inquiry(_with(body, "amount", amount)).body["amount"] == amount


def test_parse_can_skip_the_composition_check(body: dict[str, Any]) -> None:
    document = _with(body, "virtualAccountNo", "   9990012345678901234567890")
    inquiry = parse_inquiry(document, check_composition=False)
    assert inquiry.payment_code == "9990012345678901234567890"


# parse_inquiry: missing and malformed fields --------------------------------------------------

MANDATORY = [
    "partnerServiceId",
    "customerNo",
    "virtualAccountNo",
    "inquiryRequestId",
    "additionalInfo",
    "additionalInfo.channel",
]


@pytest.mark.parametrize("path", MANDATORY)
def test_missing_mandatory_field(body: dict[str, Any], path: str) -> None:
    error = _refusal(_without(body, path))
    assert error.case is Case.MISSING_MANDATORY_FIELD
    assert error.field == path


@pytest.mark.parametrize("path", [p for p in MANDATORY if p != "additionalInfo"])
@pytest.mark.parametrize("value", [None, ""])
def test_null_or_empty_mandatory_field_is_missing(
    body: dict[str, Any], path: str, value: Any
) -> None:
    error = _refusal(_with(body, path, value))
    assert error.case is Case.MISSING_MANDATORY_FIELD
    assert error.field == path


def test_null_additional_info_is_missing(body: dict[str, Any]) -> None:
    error = _refusal(_with(body, "additionalInfo", None))
    assert (error.case, error.field) == (Case.MISSING_MANDATORY_FIELD, "additionalInfo")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("partnerServiceId", 88899),
        ("partnerServiceId", "8889a"),
        ("partnerServiceId", "123456789"),
        ("partnerServiceId", "        "),
        ("partnerServiceId", "88899   "),
        ("partnerServiceId", "\t  88899"),
        ("partnerServiceId", "   ٨٨٨٩٩"),
        ("customerNo", 12345678901234567890),
        ("customerNo", "1234567890123456789a"),
        ("customerNo", "123456789012345678901"),
        ("customerNo", " 12345678901234567890"),
        ("customerNo", "١٢٣٤٥"),
        ("virtualAccountNo", 8889912345678901234567890),
        ("virtualAccountNo", "    8889912345678901234567890"),  # 29 characters
        ("virtualAccountNo", "   88899-12345678901234567890"),
        ("virtualAccountNo", "   8889912345678901234567891"),  # not partner + customer
        ("virtualAccountNo", "                            "),
        ("inquiryRequestId", 1234),
        ("inquiryRequestId", "x" * 129),
        ("additionalInfo", "VIRTUAL_ACCOUNT_BTN"),
        ("additionalInfo", ["VIRTUAL_ACCOUNT_BTN"]),
        ("additionalInfo.channel", 1),
        ("additionalInfo.channel", "X" * 31),
        ("trxDateInit", 1714533329),
        ("trxDateInit", "2024-05-01T10:15:29+07:00" + " " * 16),
        ("language", "IND"),
        ("language", 1),
        ("channelCode", 60110),
        ("channelCode", "60110"),
        ("channelCode", -1),
        ("channelCode", "60a1"),
        ("channelCode", 6011.0),
        ("channelCode", True),
        ("channelCode", [6011]),
        ("channelCode", ""),
        ("amount", "25000.00"),
        ("amount", 25000),
    ],
)
def test_invalid_field_format(body: dict[str, Any], path: str, value: Any) -> None:
    error = _refusal(_with(body, path, value))
    assert error.case is Case.INVALID_FIELD_FORMAT
    assert error.field == path


def test_virtual_account_no_may_be_28_characters_but_not_29(body: dict[str, Any]) -> None:
    assert len(body["virtualAccountNo"]) == 28
    assert parse_inquiry(body).virtual_account_no == body["virtualAccountNo"]
    error = _refusal(_with(body, "virtualAccountNo", " " + body["virtualAccountNo"]))
    assert (error.case, error.field) == (Case.INVALID_FIELD_FORMAT, "virtualAccountNo")


def test_composition_mismatch_names_the_virtual_account(body: dict[str, Any]) -> None:
    document = _with(body, "customerNo", "12345678901234567891")
    error = _refusal(document)
    assert (error.case, error.field) == (Case.INVALID_FIELD_FORMAT, "virtualAccountNo")
    assert parse_inquiry(document, check_composition=False).customer_no == "12345678901234567891"


def test_limits_are_inclusive(body: dict[str, Any]) -> None:
    document = body | {
        "inquiryRequestId": "x" * 128,
        "additionalInfo": {"channel": "X" * 30},
        "trxDateInit": "t" * 40,
        "language": "EN",
        "channelCode": 9999,
    }
    inquiry = parse_inquiry(document)
    assert (len(inquiry.inquiry_request_id), len(inquiry.channel or "")) == (128, 30)


# validate_bill --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bill",
    [
        _bill(),
        _bill(name="A" * 255),
        _bill(name="Jl. A/B no.5, RT 01 = '@%_+:-'"),
        _bill(amount=Decimal("0.01")),
        _bill(amount=Decimal("9999999999999999.99")),
        _bill(trx_type="O", amount=Decimal("0")),
        _bill(trx_type="O", amount=Decimal("0"), min_amount=Decimal("10000"), max_amount=None),
        _bill(trx_type="V", min_amount=Decimal("10000"), max_amount=Decimal("10000")),
        _bill(expires_at=datetime(2030, 1, 1, tzinfo=WIB), trx_id="INV-1" * 12),
        _bill(email="budi@example.com", phone="+628123456789", reusable=False),
        _bill(free_text=(FreeText("x" * 64, "y" * 64),)),
    ],
)
def test_validate_accepts(bill: Bill) -> None:
    validate_bill(bill)  # raises ResolverError when a bill is refused


@pytest.mark.parametrize(
    ("bill", "problem"),
    [
        (
            _bill(trx_type="O", min_amount=Decimal("20000"), max_amount=Decimal("10000")),
            "min_amount must not exceed max_amount",
        ),
        (_bill(min_amount=Decimal("10000")), "only allowed with trx_type 'O' or 'V'"),
        (_bill(max_amount=Decimal("10000")), "only allowed with trx_type 'O' or 'V'"),
        (_bill(amount=Decimal("25000.005")), "amount: amount has more than two decimals"),
        (
            _bill(trx_type="O", min_amount=Decimal("0.001")),
            "min_amount: amount has more than two decimals",
        ),
        (
            _bill(trx_type="O", max_amount=Decimal("1.999")),
            "max_amount: amount has more than two decimals",
        ),
        (_bill(amount=25000.0), "amount must be a Decimal, not float"),
        (_bill(amount=25000), "amount must be a Decimal, not int"),
        (_bill(trx_type="O", min_amount=1.5), "min_amount: amount must be a Decimal"),
        (_bill(amount=None, trx_type="O"), "amount is missing"),
        (_bill(amount=None), "amount is missing"),
        (_bill(amount=Decimal("-1")), "non-negative"),
        (_bill(amount=Decimal("0")), "a closed bill needs a positive amount"),
        (_bill(name="Budi Śantoso"), "name must be"),
        (_bill(name="Budi <script>"), "name must be"),
        (_bill(name="Budi\nSantoso"), "name must be"),
        (_bill(name=""), "name must be"),
        (_bill(name="A" * 256), "name must be"),
        (_bill(name=None), "name must be"),
        (_bill(expires_at=datetime(2030, 1, 1)), "not the naive 2030-01-01T00:00:00"),
        (_bill(expires_at="2030-01-01T00:00:00+07:00"), "expires_at must be"),
        (_bill(trx_type="X"), "trx_type must be"),
        (_bill(currency="USD"), "currency must be IDR"),
        (_bill(trx_id="x" * 65), "trx_id must be"),
        (_bill(email="not-an-address"), "email is not"),
        (_bill(phone="12345"), "phone must be"),
        (_bill(phone="٠٨١٢٣٤٥٦٧٨٩"), "phone must be"),
        (_bill(free_text=(FreeText("x" * 65, "y"),)), "free_text lines"),
    ],
)
def test_validate_refuses(bill: Bill, problem: str) -> None:
    with pytest.raises(ResolverError) as caught:
        validate_bill(bill)
    assert str(caught.value).startswith("invalid bill: ")
    assert problem in str(caught.value)


def test_validate_lists_every_problem() -> None:
    with pytest.raises(ResolverError) as caught:
        validate_bill(_bill(name="", currency="USD", expires_at=datetime(2030, 1, 1)))
    message = str(caught.value)
    assert "name must be" in message
    assert "currency must be IDR" in message
    assert "expires_at must be" in message


# render_bill ----------------------------------------------------------------------------------


def test_render_a_closed_bill(body: dict[str, Any]) -> None:
    inquiry = parse_inquiry(body)
    document = render_bill(inquiry, _bill(trx_id="INV-0001"))
    assert document == {
        "responseCode": "2002400",
        "responseMessage": "Successful",
        "virtualAccountData": {
            "partnerServiceId": "   88899",
            "customerNo": "12345678901234567890",
            "virtualAccountNo": "   8889912345678901234567890",
            "virtualAccountName": "Budi Santoso",
            "inquiryRequestId": "abcdef-123456-abcdef",
            "totalAmount": {"value": "25000.00", "currency": "IDR"},
            "virtualAccountTrxType": "C",
            "inquiryStatus": "00",
            "inquiryReason": {"english": "Success", "indonesia": "Sukses"},
            "additionalInfo": {"channel": "VIRTUAL_ACCOUNT_BTN", "trxId": "INV-0001"},
        },
    }


def test_render_echoes_request_strings_byte_for_byte(body: dict[str, Any]) -> None:
    document = body | {
        "partnerServiceId": " 88899",
        "customerNo": "0012345",
        "virtualAccountNo": "  888990012345",
        "inquiryRequestId": "DIPCVA003T240913101610069TxXxsQnHAYA",
        "additionalInfo": {"channel": "VIRTUAL_ACCOUNT_BANK_DANAMON"},
    }
    data = render_bill(parse_inquiry(document), _bill())["virtualAccountData"]
    for key in ("partnerServiceId", "customerNo", "virtualAccountNo", "inquiryRequestId"):
        assert data[key] == document[key]
    assert data["additionalInfo"]["channel"] == "VIRTUAL_ACCOUNT_BANK_DANAMON"
    wire = json.dumps(data, separators=(",", ":")).encode("utf-8")
    assert b'"partnerServiceId":" 88899"' in wire
    assert b'"virtualAccountNo":"  888990012345"' in wire


@pytest.mark.parametrize(
    ("amount", "value"),
    [
        (Decimal("25000"), "25000.00"),
        (Decimal("25000.5"), "25000.50"),
        (Decimal("1E+3"), "1000.00"),
        (Decimal("0.01"), "0.01"),
        (Decimal("9999999999999999.99"), "9999999999999999.99"),
    ],
)
def test_render_formats_amounts(body: dict[str, Any], amount: Decimal, value: str) -> None:
    document = render_bill(parse_inquiry(body), _bill(amount=amount))
    assert document["virtualAccountData"]["totalAmount"] == {"value": value, "currency": "IDR"}


def test_render_formats_every_amount_as_snap_strings(body: dict[str, Any]) -> None:
    bill = _bill(
        trx_type="V",
        amount=Decimal("150000"),
        min_amount=Decimal("10000.5"),
        max_amount=Decimal("1E+6"),
    )
    data = render_bill(parse_inquiry(body), bill)["virtualAccountData"]
    config = data["additionalInfo"]["virtualAccountConfig"]
    assert config == {"minAmount": "10000.50", "maxAmount": "1000000.00"}
    for value in (data["totalAmount"]["value"], config["minAmount"], config["maxAmount"]):
        assert AMOUNT.fullmatch(value)


@pytest.mark.parametrize(("setting", "value"), [("0.00", "0.00"), ("0", "0")])
def test_render_open_amount_value(body: dict[str, Any], setting: str, value: str) -> None:
    bill = _bill(trx_type="O", amount=Decimal("0"), min_amount=Decimal("10000"))
    data = render_bill(parse_inquiry(body), bill, open_amount_value=setting)["virtualAccountData"]
    assert data["totalAmount"] == {"value": value, "currency": "IDR"}
    assert data["virtualAccountTrxType"] == "O"
    assert data["additionalInfo"]["virtualAccountConfig"] == {"minAmount": "10000.00"}


def test_render_open_amount_defaults_to_two_decimals(body: dict[str, Any]) -> None:
    bill = _bill(trx_type="O", amount=Decimal("0"))
    data = render_bill(parse_inquiry(body), bill)["virtualAccountData"]
    assert data["totalAmount"]["value"] == "0.00"


def test_render_open_bill_with_an_amount_formats_it(body: dict[str, Any]) -> None:
    bill = _bill(trx_type="O", amount=Decimal("5000"))
    data = render_bill(parse_inquiry(body), bill, open_amount_value="0")["virtualAccountData"]
    assert data["totalAmount"]["value"] == "5000.00"


def test_render_omits_null_optionals(body: dict[str, Any]) -> None:
    document = render_bill(parse_inquiry(body), _bill())
    data = document["virtualAccountData"]
    for absent in (
        "virtualAccountEmail",
        "virtualAccountPhone",
        "expiredDate",
        "freeText",
        "trxId",
    ):
        assert absent not in data
    assert data["additionalInfo"] == {"channel": "VIRTUAL_ACCOUNT_BTN"}
    assert None not in list(_values(document))


def test_render_includes_the_optionals_it_is_given(body: dict[str, Any]) -> None:
    bill = _bill(
        email="budi@example.com",
        phone="628123456789",
        expires_at=datetime(2025, 8, 31, 2, 54, 4, 123456, tzinfo=UTC).astimezone(WIB),
        trx_id="INV-0001",
        reusable=False,
        free_text=(FreeText("Free text", "Tulisan Bebas"),),
    )
    data = render_bill(parse_inquiry(body), bill)["virtualAccountData"]
    assert data["virtualAccountEmail"] == "budi@example.com"
    assert data["virtualAccountPhone"] == "628123456789"
    assert data["expiredDate"] == "2025-08-31T09:54:04+07:00"
    assert data["freeText"] == [{"english": "Free text", "indonesia": "Tulisan Bebas"}]
    assert data["additionalInfo"] == {
        "channel": "VIRTUAL_ACCOUNT_BTN",
        "trxId": "INV-0001",
        "virtualAccountConfig": {"reusableStatus": False},
    }
    assert list(data) == [
        "partnerServiceId",
        "customerNo",
        "virtualAccountNo",
        "virtualAccountName",
        "virtualAccountEmail",
        "virtualAccountPhone",
        "inquiryRequestId",
        "totalAmount",
        "virtualAccountTrxType",
        "expiredDate",
        "inquiryStatus",
        "inquiryReason",
        "freeText",
        "additionalInfo",
    ]


def test_rendered_answer_is_plain_json(body: dict[str, Any]) -> None:
    inquiry: Inquiry = parse_inquiry(body)
    document = render_bill(inquiry, _bill(trx_type="O", max_amount=Decimal("1"), trx_id="INV-1"))
    assert json.loads(json.dumps(document)) == document


@pytest.mark.parametrize("va_no", [" 88899 0012345", "888990012345 ", "88899\t0012345"])
def test_spaces_are_padding_only(body: dict[str, Any], va_no: str) -> None:
    document = body | {
        "partnerServiceId": " 88899",
        "customerNo": "0012345",
        "virtualAccountNo": va_no,
    }
    with pytest.raises(SnapError) as info:
        parse_inquiry(document)
    assert (info.value.case, info.value.field) == (Case.INVALID_FIELD_FORMAT, "virtualAccountNo")


@pytest.mark.parametrize(
    "zone",
    [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9)), WIB],
)
def test_expired_date_is_sent_in_wib_whatever_the_zone(body: dict[str, Any], zone: Any) -> None:
    moment = datetime(2030, 1, 1, 2, 0, tzinfo=UTC).astimezone(zone)
    data = render_bill(parse_inquiry(body), _bill(expires_at=moment))["virtualAccountData"]
    assert data["expiredDate"] == "2030-01-01T09:00:00+07:00"
    template = bill_template(_bill(expires_at=moment)).render(parse_inquiry(body))
    assert '"expiredDate":"2030-01-01T09:00:00+07:00"' in template.decode()
