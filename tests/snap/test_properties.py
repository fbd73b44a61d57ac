"""Property tests of every parser and validator in gateway.snap (issue 8).

For any input each one either returns a value or raises its documented error (SnapError and its
FieldError for request rules, ValueError for the value parsers and DOKU's answers), never another
exception; and where a value has a written form, it round-trips through it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.snap.amounts import format_amount, is_amount, parse_amount
from gateway.snap.canonical import body_candidates, minify
from gateway.snap.codes import Case
from gateway.snap.errors import SnapError
from gateway.snap.fields import (
    MAX_JSON_DEPTH,
    optional_object,
    optional_str,
    parse_json,
    printable_ascii,
    require_object,
    require_str,
)
from gateway.snap.inquiry import parse_inquiry
from gateway.snap.keys import load_private_key, load_public_key
from gateway.snap.payment import parse_payment, render_ack
from gateway.snap.signature import SymmetricSigner, verify_asymmetric
from gateway.snap.timestamps import epoch_of, format_timestamp, parse_timestamp, within_window
from gateway.snap.tokens import TokenVerifier
from gateway.snap.va import CheckStatusRequest, CreateVaRequest, DeleteVaRequest, UpdateVaRequest
from gateway.snap.va_results import CheckStatusResult, VaResult

from ..support import Keys

# The machine is shared: no per-example deadline. A settings object per test, not a profile:
# loading a profile would change every other module's hypothesis tests too.
props = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])

# -- strategies --------------------------------------------------------------------------------

# Any text a JSON string can carry, lone surrogates included ("\ud800" is valid JSON).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(any_text, json_values, max_size=6)

digits = st.text("0123456789", min_size=1, max_size=20)


def _spaced(prefix: str) -> str:
    return prefix.rjust(8)


@st.composite
def inquiry_like(draw: st.DrawFn) -> dict[str, Any]:
    """A body close to DOKU's, with any field possibly replaced by any JSON value, so the parser
    is driven past its first check as often as it is stopped there."""
    prefix = draw(st.text("0123456789", min_size=1, max_size=8))
    customer = draw(digits)
    partner = _spaced(prefix)
    document: dict[str, Any] = {
        "partnerServiceId": partner,
        "customerNo": customer,
        "virtualAccountNo": partner + customer,
        "inquiryRequestId": draw(st.text(min_size=1, max_size=20)),
        "channelCode": draw(st.sampled_from([6011, "6011", None, True, 1.5, "abc"])),
        "trxDateInit": draw(st.none() | st.text(max_size=50)),
        "language": draw(st.sampled_from(["ID", "EN", None, "ENG"])),
        "additionalInfo": {"channel": draw(st.text(min_size=1, max_size=35))},
    }
    for key in draw(st.lists(st.sampled_from(sorted(document)), max_size=3)):
        document[key] = draw(json_values)
    return document


@st.composite
def payment_like(draw: st.DrawFn) -> dict[str, Any]:
    document = draw(inquiry_like())
    document.pop("channelCode", None)
    value = draw(
        st.sampled_from(["25000.00", "0.00", "1.5", "-1.00", "١٢.٠٠", "99999999999999999.00"])
        | st.decimals(min_value=0, max_value=10**15, places=2).map(str)
    )
    document.update(
        paymentRequestId=draw(st.text(min_size=1, max_size=20)),
        paidAmount={"value": value, "currency": draw(st.sampled_from(["IDR", "USD", ""]))},
        virtualAccountName=draw(st.none() | st.text(max_size=30)),
        trxId=draw(st.none() | st.text(max_size=70)),
        virtualAccountTrxType=draw(st.sampled_from(["C", "O", "V", "X", None])),
    )
    info = document.get("additionalInfo")
    if isinstance(info, dict):
        info.update(
            draw(st.dictionaries(st.sampled_from(["senderName", "souceBankName"]), any_text))
        )
    for key in draw(st.lists(st.sampled_from(sorted(document)), max_size=2)):
        document[key] = draw(json_values)
    return document


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def assert_snap_refusal(error: SnapError) -> None:
    assert error.case in (Case.MISSING_MANDATORY_FIELD, Case.INVALID_FIELD_FORMAT)
    assert error.field


# -- timestamps ----------------------------------------------------------------------------------

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", re.A)


@props
@given(st.text(max_size=50) | st.from_regex(TIMESTAMP, fullmatch=True))
def test_parse_timestamp_gives_an_aware_datetime_or_value_error(text: str) -> None:
    try:
        parsed = parse_timestamp(text)
    except ValueError:
        return
    assert parsed.utcoffset() is not None
    assert epoch_of(text) == parsed.timestamp()
    assert within_window(parsed, parsed.timestamp(), 0)


@props
@given(st.text(max_size=50) | st.from_regex(TIMESTAMP, fullmatch=True))
def test_epoch_of_is_a_number_or_value_error(text: str) -> None:
    try:
        value = epoch_of(text)
    except ValueError:
        return
    assert isinstance(value, float)


offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@props
@given(
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9000, 1, 1), timezones=offsets)
)
def test_format_timestamp_round_trips_the_instant(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert text.endswith("+07:00")
    assert parse_timestamp(text) == moment.replace(microsecond=0)


# -- amounts -------------------------------------------------------------------------------------


@props
@given(st.text(max_size=25) | st.from_regex(r"\d{1,18}\.\d{1,3}", fullmatch=True))
def test_parse_amount_is_a_decimal_or_value_error_and_round_trips(text: str) -> None:
    try:
        amount = parse_amount(text)
    except ValueError:
        assert not is_amount(text)
        return
    assert is_amount(text)
    written = format_amount(amount)
    assert is_amount(written)
    assert parse_amount(written) == amount
    if not re.match(r"0\d", text):  # no leading zeros: the very same text
        assert written == text


@props
@given(st.none() | st.integers() | st.floats() | st.binary(max_size=5) | st.lists(st.text()))
def test_parse_amount_of_anything_but_text_is_value_error(value: Any) -> None:
    try:
        parse_amount(value)
    except ValueError:
        return
    raise AssertionError(f"parse_amount accepted {value!r}")


@props
@given(
    st.decimals(allow_nan=True, allow_infinity=True)
    | st.decimals(min_value=0, max_value=10**17, places=2)
    | st.integers()
    | st.floats()
)
def test_format_amount_writes_a_snap_amount_or_value_error(value: Any) -> None:
    try:
        text = format_amount(value)
    except ValueError:
        return
    assert isinstance(value, Decimal)
    assert is_amount(text)
    assert Decimal(text) == value


# -- fields and parse_json -----------------------------------------------------------------------


@props
@given(st.binary(max_size=200))
def test_parse_json_of_any_bytes_is_an_object_or_a_body_refusal(raw: bytes) -> None:
    try:
        document = parse_json(raw)
    except SnapError as error:
        assert (error.case, error.field) == (Case.INVALID_FIELD_FORMAT, "body")
        return
    assert isinstance(document, dict)


@props
@given(json_objects, st.booleans())
def test_parse_json_round_trips_any_object_within_the_depth_limit(
    document: dict[str, Any], ensure_ascii: bool
) -> None:
    raw = json.dumps(document, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    assert parse_json(raw) == document


@props
@given(st.integers(min_value=1, max_value=80), st.sampled_from(["{", "["]), st.integers(1, 60))
def test_parse_json_refuses_exactly_what_nests_past_the_limit(
    levels: int, inner: str, limit: int
) -> None:
    value: Any = [] if inner == "[" else {}
    for index in range(levels - 1):
        value = {"k": value} if index % 2 else [value]
    document = {"wrap": value}
    raw = json.dumps(document).encode()
    try:
        parsed = parse_json(raw, limit)
    except SnapError:
        assert depth(document) > limit
        return
    assert depth(document) <= limit
    assert parsed == document


@props
@given(st.text(max_size=30), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-2E400"]))
def test_parse_json_refuses_numbers_no_encoder_can_write(key: str, number: str) -> None:
    raw = f'{{"{json.dumps(key)[1:-1]}":{number}}}'.encode()
    try:
        parse_json(raw)
    except SnapError as error:
        assert error.field == "body"
        return
    raise AssertionError(f"{number} was accepted")


def test_default_depth_limit() -> None:
    assert MAX_JSON_DEPTH == 32


@props
@given(json_objects, any_text, st.integers(min_value=0, max_value=50))
def test_field_rules_return_their_type_or_a_snap_refusal(
    document: dict[str, Any], key: str, max_length: int
) -> None:
    for check in (
        lambda: require_str(document, key, key or "k", max_length),
        lambda: optional_str(document, key, key or "k", max_length, re.compile(r"\d+")),
        lambda: require_object(document, key, key or "k"),
        lambda: optional_object(document, key, key or "k"),
    ):
        try:
            value = check()
        except SnapError as error:
            assert_snap_refusal(error)
            continue
        assert value is None or isinstance(value, str | dict)
        if isinstance(value, str):
            assert len(value) <= max_length


@props
@given(any_text)
def test_printable_ascii_is_exactly_1_to_64_printable_characters(text: str) -> None:
    expected = 0 < len(text) <= 64 and all(" " <= c <= "~" for c in text)
    assert printable_ascii(text) is expected


# -- inquiry and payment bodies ------------------------------------------------------------------


@props
@given(inquiry_like() | json_objects, st.booleans())
def test_parse_inquiry_is_an_inquiry_or_a_snap_refusal(
    document: dict[str, Any], composition: bool
) -> None:
    try:
        inquiry = parse_inquiry(document, check_composition=composition)
    except SnapError as error:
        assert_snap_refusal(error)
        return
    # Strings are echoed verbatim; only the payment code loses its spaces.
    assert inquiry.partner_service_id == document["partnerServiceId"]
    assert inquiry.virtual_account_no == document["virtualAccountNo"]
    assert inquiry.payment_code == document["virtualAccountNo"].replace(" ", "")
    assert inquiry.payment_code.isdigit() and inquiry.payment_code.isascii()
    if composition:
        assert inquiry.payment_code == inquiry.partner_service_id.strip() + inquiry.customer_no
    assert dict(inquiry.body) == document


@props
@given(payment_like() | json_objects, st.booleans())
def test_parse_payment_is_a_payment_or_a_snap_refusal(
    document: dict[str, Any], composition: bool
) -> None:
    try:
        payment = parse_payment(document, check_composition=composition)
    except SnapError as error:
        assert_snap_refusal(error)
        return
    assert payment.paid_amount == Decimal(document["paidAmount"]["value"])
    assert format_amount(payment.paid_amount) == document["paidAmount"]["value"]
    assert payment.payment_request_id == document["paymentRequestId"]
    ack = render_ack(document)
    assert ack["responseCode"] == "2002500"
    assert ack["virtualAccountData"]["paymentRequestId"] == document["paymentRequestId"]


@props
@given(json_objects)
def test_render_ack_of_any_object_is_json(document: dict[str, Any]) -> None:
    ack = render_ack(document)
    assert json.loads(minify(ack, ensure_ascii=True)) == ack


# -- canonicalisation --------------------------------------------------------------------------


@props
@given(json_values)
def test_minify_round_trips_any_json_value(document: Any) -> None:
    escaped = minify(document, ensure_ascii=True)
    assert escaped.isascii()
    assert json.loads(escaped) == document
    try:
        unescaped = minify(document)
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form; only the escaped one
        return
    assert json.loads(unescaped) == document


@props
@given(json_objects)
def test_body_candidates_are_the_forms_of_the_same_document(document: dict[str, Any]) -> None:
    raw = json.dumps(document, indent=1).encode("utf-8", "surrogatepass")
    candidates = list(body_candidates(raw, parse_json(raw)))
    names = [name for name, _ in candidates]
    # The bytes as received come last, unless they are one of the minified forms already.
    assert names[-1] == "raw" or raw in [body for _, body in candidates]
    assert set(names) <= {"minified-utf8", "minified-ascii", "raw"}
    assert len({body for _, body in candidates}) == len(candidates)  # no hash twice
    for name, body in candidates:
        if name != "raw":
            assert json.loads(body) == document


# -- signatures, tokens and keys on hostile input --------------------------------------------


@props
@given(st.text(max_size=100), st.binary(max_size=100), st.text(max_size=40))
def test_symmetric_verify_of_any_input_is_a_form_or_none(
    signature: str, raw: bytes, token: str
) -> None:
    signer = SymmetricSigner.from_secret("SK-secret-0000000000", "SK-next-000000000000")
    try:
        document = parse_json(raw)
    except SnapError:
        document = None
    assert signer.verify("POST", "/p", token, raw, document, "t", signature) in (
        None,
        "minified-utf8",
        "minified-ascii",
        "raw",
        "empty",
    )


@props
@given(json_objects, st.text(max_size=40))
def test_symmetric_signature_round_trips_with_either_secret(
    document: dict[str, Any], token: str
) -> None:
    current = SymmetricSigner.from_secret("SK-current-000000000")
    following = SymmetricSigner.from_secret("SK-next-000000000000")
    both = SymmetricSigner.from_secret("SK-current-000000000", "SK-next-000000000000")
    raw = minify(document, ensure_ascii=True)
    for signer, key in ((current, "current"), (following, "next")):
        signature = signer.sign("POST", "/p", token, raw, "ts")
        found = both.match("POST", "/p", token, raw, parse_json(raw), "ts", signature)
        assert found is not None and found.key == key


@props
@given(token=st.text(max_size=300))
def test_token_verifier_answers_any_string_with_false(keys: Keys, token: str) -> None:
    verifier = TokenVerifier((keys.merchant.public_key(),), keys.client_id)
    assert verifier.verify(token, now=1_700_000_000) is False


@props
@given(signature=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_verify_asymmetric_answers_any_signature_with_false(keys: Keys, signature: str) -> None:
    public = keys.doku.public_key()
    assert verify_asymmetric(public, keys.client_id, "2024-01-01T00:00:00Z", signature) is False


@props
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_key_loaders_return_a_key_or_value_error(data: bytes) -> None:
    for load in (load_public_key, load_private_key):
        try:
            load(data)
        except ValueError:
            continue
        raise AssertionError(f"{load.__name__} accepted {data!r}")


# -- DOKU VA API requests and answers -----------------------------------------------------------

_VA_REQUESTS = (CheckStatusRequest, CreateVaRequest, UpdateVaRequest, DeleteVaRequest)


@st.composite
def va_body_like(draw: st.DrawFn) -> dict[str, Any]:
    """A VA API body as DOKU's reference writes it, with any field possibly replaced."""
    prefix = draw(st.text("0123456789", min_size=1, max_size=8))
    customer = draw(digits)
    partner = _spaced(prefix)
    amount = draw(st.decimals(min_value=1, max_value=10**12, places=2))
    document: dict[str, Any] = {
        "partnerServiceId": partner,
        "customerNo": customer,
        "virtualAccountNo": partner + customer,
        "virtualAccountName": draw(st.from_regex(r"[A-Za-z0-9 .]{1,30}", fullmatch=True)),
        "trxId": draw(st.text("ABC123-", min_size=1, max_size=20)),
        "totalAmount": {"value": format_amount(amount), "currency": "IDR"},
        "additionalInfo": {
            "channel": draw(
                st.sampled_from(["VIRTUAL_ACCOUNT_BANK_MANDIRI", "VIRTUAL_ACCOUNT_BTN"])
            ),
            "virtualAccountConfig": {"reusableStatus": draw(st.booleans())},
        },
        "virtualAccountTrxType": "C",
        "expiredDate": draw(st.none() | st.from_regex(TIMESTAMP, fullmatch=True)),
        "inquiryRequestId": draw(st.none() | st.text(min_size=1, max_size=20)),
        "paymentRequestId": draw(st.none() | st.text(min_size=1, max_size=20)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(document)), max_size=2)):
        document[key] = draw(json_values)
    return document


@props
@given(st.sampled_from(_VA_REQUESTS), va_body_like() | json_objects)
def test_va_requests_read_a_body_or_name_the_field_and_round_trip(
    request_type: Any, document: dict[str, Any]
) -> None:
    try:
        request = request_type.from_body(document)
    except SnapError as error:
        assert_snap_refusal(error)
        return
    assert request_type.from_body(request.to_body()) == request


@props
@given(st.sampled_from([CheckStatusResult, VaResult]), json_objects | payment_like())
def test_doku_answers_are_read_or_refused_with_value_error(
    result_type: Any, document: dict[str, Any]
) -> None:
    try:
        result_type.from_body(document)
    except ValueError:
        return
