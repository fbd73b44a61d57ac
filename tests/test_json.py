"""Differential tests of :mod:`gateway._json` against the standard library.

orjson is used only where its result is :mod:`json`'s: the bytes written (floats aside) and the
documents read must be exactly what the standard library alone writes and reads. Each property
here runs the same input through the fast path and through the standard library and demands the
same answer, or the same refusal.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway._json import dumps_ascii, dumps_utf8, loads
from gateway.payments.ledger.base import LedgerEntry
from gateway.snap.answers import json_bytes
from gateway.snap.codes import Case
from gateway.snap.errors import SnapError
from gateway.snap.fields import MAX_JSON_DEPTH, parse_json
from gateway.snap.models import Bill, BillStatus, FreeText, Outcome
from gateway.state.codec import decode_outcome, encode_outcome

# The machine is shared: no per-example deadline (a settings object per test, not a profile).
props = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
many = settings(props, max_examples=1000)

# -- reference behaviour (the standard library, as the gateway used it before orjson) ------------


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_REFERENCE = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)


def _depth(document: Any) -> int:
    """How many levels containers nest (an explicit stack: bodies may nest thousands deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def reference_parse(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any] | None:
    """The old ``parse_json``: the document, or ``None`` where it refused the body."""
    try:
        document = _REFERENCE.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(document, dict) or _depth(document) > max_depth:
        return None
    return document


def fast_parse(raw: bytes) -> dict[str, Any] | None:
    """``parse_json``: the document, or ``None`` where it refused the body as it documents."""
    try:
        return parse_json(raw)
    except SnapError as error:
        assert (error.case, error.field) == (Case.INVALID_FIELD_FORMAT, "body")
        return None


def canonical(value: Any) -> object:
    """A form equal only for equal JSON documents of equal types: ``1`` and ``1.0``, ``0.0``
    and ``-0.0``, ``True`` and ``1`` differ; key order counts; no subclasses pass."""
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is str:
        return (kind.__name__, value)
    if kind is float:
        return ("float", value.hex())
    if kind is list:
        return ("list", tuple(canonical(item) for item in value))
    if kind is dict:
        for key in value:
            assert type(key) is str, f"key {key!r} is a {type(key).__name__}"
        return ("dict", tuple((key, canonical(item)) for key, item in value.items()))
    raise AssertionError(f"not a JSON value: {value!r} ({kind.__name__})")


def assert_same_reading(raw: bytes) -> dict[str, Any] | None:
    expected = reference_parse(raw)
    actual = fast_parse(raw)
    if expected is None:
        assert actual is None, f"{raw!r}: the standard library refuses it, parse_json read it"
    else:
        assert actual is not None, f"{raw!r}: the standard library reads it, parse_json refused"
        assert canonical(actual) == canonical(expected), raw
    return actual


def old_json_bytes(document: Any) -> bytes:
    """``gateway.snap.answers.json_bytes`` before orjson."""
    text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode(document)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.JSONEncoder(separators=(",", ":")).encode(document).encode("ascii")


def std_utf8(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def std_ascii(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("ascii")


# -- strategies --------------------------------------------------------------------------------

# Characters JSON encoders treat specially, or that sit on a UTF-8 length boundary.
SPECIAL = (
    '\x00\x08\t\n\x0c\r\x1f "/\\\x7f\x80\xff\u07ff\u0800\u2028\u2029\ufeff\uffff'
    "\U00010000\U0001f600\U0010ffff"
)
SURROGATES = "\ud800\udbff\udc00\udfff"


def texts(surrogates: bool, max_size: int = 12, exclude: str = "") -> st.SearchStrategy[str]:
    specials = [
        char for char in SPECIAL + (SURROGATES if surrogates else "") if char not in exclude
    ]
    if surrogates:
        characters = st.characters(codec=None, exclude_categories=(), exclude_characters=exclude)
    else:
        characters = st.characters(codec="utf-8", exclude_characters=exclude)  # no surrogates
    return st.text(characters | st.sampled_from(specials), max_size=max_size)


BOUNDARY_INTEGERS = [
    0,
    -1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    -(2**64),
    10**18 - 1,
    10**18,
    10**19,
    10**30,
    -(10**30),
]
integers = st.integers() | st.sampled_from(BOUNDARY_INTEGERS) | st.integers(-(2**70), 2**70)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)


def documents(
    text: st.SearchStrategy[str], floats: st.SearchStrategy[float] | None
) -> st.SearchStrategy[Any]:
    scalars: st.SearchStrategy[Any] = st.none() | st.booleans() | integers | text
    if floats is not None:
        scalars = scalars | floats
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4)
        ),
        max_leaves=20,
    )


float_free = documents(texts(surrogates=False), None)
float_free_any_text = documents(texts(surrogates=True), None)
float_free_any_text = documents(texts(surrogates=True), None)
with_floats = documents(texts(surrogates=False), finite_floats)
lone_surrogate_text = st.builds(
    lambda before, lone, after: before + lone + after,
    texts(surrogates=True, max_size=4),
    st.sampled_from(SURROGATES) | st.characters(categories=["Cs"]),
    texts(surrogates=True, max_size=4),
)


@st.composite
def with_lone_surrogate(draw: st.DrawFn, floats: bool = True) -> Any:
    """A document holding at least one lone surrogate, in a value or in a key."""
    base = draw(documents(texts(surrogates=True), finite_floats if floats else None))
    lone = draw(lone_surrogate_text)
    placement = draw(st.sampled_from(["value", "key", "nested", "first"]))
    if placement == "value":
        return [base, lone]
    if placement == "key":
        return {"a": base, lone: 1}
    if placement == "nested":
        return {"k": [base, {"x": lone}]}
    return [lone, base]


# Bodies: any document (objects most often), written by json.dumps in any of its forms.
WHITESPACE = st.text(" \t\n\r", max_size=3)
parse_scalars = (
    st.none()
    | st.booleans()
    | integers
    | st.floats()  # NaN and infinities too: both sides must refuse them
    | texts(surrogates=True)
)
parse_values = st.recursive(
    parse_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(texts(surrogates=True), children, max_size=4)
    ),
    max_leaves=20,
)
parse_documents = st.dictionaries(texts(surrogates=True), parse_values, max_size=6) | parse_values


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    document = draw(parse_documents)
    text = json.dumps(
        document,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, None, 0, 2, "\t", " \r\n"])),
        separators=(
            draw(st.sampled_from([",", ",", ", ", " ,", ",\n", "\t,\r"])),
            draw(st.sampled_from([":", ":", ": ", " : ", "\n:\t"])),
        ),
    )
    text = draw(WHITESPACE) + text + draw(WHITESPACE)
    encoding = draw(
        st.sampled_from(["utf-8"] * 8 + ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
        | st.sampled_from(["utf-32", "utf-32-le", "utf-32-be"])
    )
    return text.encode(encoding, "surrogatepass")


MUTATION_BYTES = st.sampled_from(
    [*b'{}[]",:\\ \t\n0123456789-+.eEtrufalsn', 0x00, 0x1F, 0x7F, 0x80, 0xC0, 0xED, 0xEF, 0xFF]
) | st.integers(0, 255)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A body with a few single bytes replaced, inserted or deleted."""
    raw = bytearray(draw(json_bodies()))
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(["replace", "insert", "delete"]))
        if operation == "insert" or not raw:
            raw.insert(draw(st.integers(0, len(raw))), draw(MUTATION_BYTES))
        elif operation == "replace":
            raw[draw(st.integers(0, len(raw) - 1))] = draw(MUTATION_BYTES)
        else:
            del raw[draw(st.integers(0, len(raw) - 1))]
    return bytes(raw)


# Number literals of JSON's grammar, and some just outside it, in each place a number can be.
NUMBER = r"-?(0|[1-9][0-9]{0,32})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,4})?"
number_literals = st.from_regex(NUMBER, fullmatch=True) | st.from_regex(
    r"[-+]?[0-9]{0,30}(\.[0-9]{0,20})?([eE][-+]?[0-9]{0,4})?", fullmatch=True
)
NUMBER_CONTEXTS = [
    '{"n":%s}',
    '{"n": %s}',
    '{"n":\n\t %s }',
    '{"n":[%s]}',
    '{"n":[1,%s]}',
    '{"n":[1, %s,2]}',
    '{"n":{"m":%s}}',
    '{"s":"x,%s","n":%s}',
    '{"s":":%s"}',
]


@st.composite
def number_bodies(draw: st.DrawFn) -> bytes:
    literal = draw(number_literals)
    context = draw(st.sampled_from(NUMBER_CONTEXTS))
    return (context % ((literal,) * context.count("%s"))).encode()


# -- dumps -------------------------------------------------------------------------------------


@many
@given(float_free)
@example({"a": "\u2028\x7f\x00\x1f\U0001f600", "b": [2**64, -(2**63) - 1, True, None]})
def test_dumps_utf8_writes_the_standard_librarys_bytes(document: Any) -> None:
    assert dumps_utf8(document) == std_utf8(document)


@props
@given(with_floats)
def test_dumps_utf8_with_floats_reads_back_as_the_standard_librarys(document: Any) -> None:
    ours = json.loads(dumps_utf8(document))
    theirs = json.loads(std_utf8(document))
    assert canonical(ours) == canonical(theirs) == canonical(document)


@props
@given(with_lone_surrogate())
@example(["\ud800"])
@example({"\udfff": 1})
def test_dumps_utf8_raises_on_a_lone_surrogate_as_the_standard_library(document: Any) -> None:
    with pytest.raises(UnicodeEncodeError) as theirs:
        std_utf8(document)
    with pytest.raises(UnicodeEncodeError) as ours:
        dumps_utf8(document)
    expected, actual = theirs.value, ours.value
    assert (actual.encoding, actual.object, actual.start, actual.end, actual.reason) == (
        expected.encoding,
        expected.object,
        expected.start,
        expected.end,
        expected.reason,
    )


@many
@given(float_free_any_text)
@example({"\ud800": "é\udfff\U0001f600", "n": 2**64})
@example({"\x00\x1f\u2028": ['"\\/\n\r\t\b\f', "é", "\U0001f600"], "n": -(2**63)})
@example("plain ascii")
def test_dumps_ascii_writes_the_standard_librarys_bytes(document: Any) -> None:
    assert dumps_ascii(document) == std_ascii(document)


@pytest.mark.parametrize("document", ["\x7f", {"inq": "a\x7fb"}, ["\x7f", 1]], ids=repr)
def test_dumps_ascii_escapes_del_as_the_standard_library(document: Any) -> None:
    assert json.loads(dumps_ascii(document)) == document  # the same document either way
    assert dumps_ascii(document) == std_ascii(document)


@props
@given(documents(texts(surrogates=True), finite_floats))
def test_dumps_ascii_with_floats_is_ascii_and_reads_back_as_the_standard_librarys(
    document: Any,
) -> None:
    written = dumps_ascii(document)
    assert written.isascii()
    assert canonical(json.loads(written)) == canonical(json.loads(std_ascii(document)))


@props
@given(float_free_any_text | with_lone_surrogate(floats=False))
def test_json_bytes_writes_what_it_wrote_before(document: Any) -> None:
    assert json_bytes(document) == old_json_bytes(document)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_dumps_utf8_of_a_non_finite_float_reads_back_as_the_standard_librarys(value: float) -> None:
    ours = json.loads(dumps_utf8({"v": value}))["v"]
    theirs = json.loads(std_utf8({"v": value}))["v"]
    assert type(ours) is type(theirs) and str(ours) == str(theirs)


# -- loads through parse_json ----------------------------------------------------------------


@many
@given(json_bodies())
def test_parse_json_reads_any_written_body_as_the_standard_library(raw: bytes) -> None:
    assert_same_reading(raw)


@many
@given(mutated_bodies())
def test_parse_json_reads_any_mutated_body_as_the_standard_library(raw: bytes) -> None:
    assert_same_reading(raw)


@many
@given(number_bodies())
def test_parse_json_reads_any_number_as_the_standard_library(raw: bytes) -> None:
    assert_same_reading(raw)


@props
@given(st.binary(max_size=60))
def test_parse_json_reads_any_bytes_as_the_standard_library(raw: bytes) -> None:
    assert_same_reading(raw)


def _integer_cases() -> list[tuple[bytes, Any]]:
    cases: list[tuple[bytes, Any]] = []
    values = [int("9" * n) for n in (18, 19, 20, 21, 30)]
    values += [int("1" + "0" * (n - 1)) for n in (18, 19, 20, 21, 30)]
    values += [2**64 - 1, 2**64, 2**63 - 1, 2**63]
    for value in values:
        for signed in (value, -value):
            cases.append((b'{"n":%d}' % signed, {"n": signed}))
            cases.append((b'{"n": [1,\t%d]}' % signed, {"n": [1, signed]}))
    cases.append((b'{"n":-9223372036854775808}', {"n": -9223372036854775808}))
    cases.append((b'{"n":-9223372036854775809}', {"n": -9223372036854775809}))
    return cases


def _nested(levels: int) -> bytes:
    """An object whose containers nest ``levels`` deep."""
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


def _nested_arrays(levels: int) -> bytes:
    return b'{"a":' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


def _deep(levels: int) -> Any:
    document: Any = {}
    for _ in range(levels - 1):
        document = {"a": document}
    return document


def _deep_arrays(levels: int) -> Any:
    document: Any = []
    for _ in range(levels - 2):
        document = [document]
    return {"a": document}


REFUSED = None
EXPLICIT: list[tuple[bytes, Any]] = [
    *_integer_cases(),
    (b'{"n":1e400}', REFUSED),
    (b'{"n":-1e400}', REFUSED),
    (b'{"n":1.7976931348623159e308}', REFUSED),
    (b'{"n":1e-400}', {"n": 0.0}),
    (b'{"n":-1e-400}', {"n": -0.0}),
    (b'{"n":-0}', {"n": 0}),
    (b'{"n":-0.0}', {"n": -0.0}),
    (b'{"n":1E5}', {"n": 100000.0}),
    (b'{"n":12345678901234567890.5}', {"n": 12345678901234567890.5}),
    (b'{"n":1234567890123456789e-5}', {"n": 1234567890123456789e-5}),
    (b'{"n":NaN}', REFUSED),
    (b'{"n":Infinity}', REFUSED),
    (b'{"n":-Infinity}', REFUSED),
    (b'{"n":01}', REFUSED),
    (b'{"n":+1}', REFUSED),
    (b'{"n":.5}', REFUSED),
    (b"\xef\xbb\xbf" + b'{"a":"b"}', {"a": "b"}),
    ('{"a":"\u00e9\U0001f600"}'.encode("utf-16-le"), {"a": "\u00e9\U0001f600"}),
    ('{"a":"\u00e9\U0001f600"}'.encode("utf-16-be"), {"a": "\u00e9\U0001f600"}),
    ('{"a":"\u00e9"}'.encode("utf-16"), {"a": "\u00e9"}),
    ('{"a":"\u00e9\U0001f600"}'.encode("utf-32"), {"a": "\u00e9\U0001f600"}),
    ('{"a":"\u00e9"}'.encode("utf-32-le"), {"a": "\u00e9"}),
    ('{"n":12345678901234567890}'.encode("utf-16-le"), {"n": 12345678901234567890}),
    (b'{"a":"\\ud800"}', {"a": "\ud800"}),
    (b'{"a":"\\udfff\\ud800"}', {"a": "\udfff\ud800"}),
    (b'{"\\ud800":1}', {"\ud800": 1}),
    (b'{"a":"\\ud83d\\ude00"}', {"a": "\U0001f600"}),
    (b'{"a":"x\xed\xa0\x80y"}', {"a": "x\ud800y"}),
    (b'{"a":"\xed\xa0\xbd\xed\xb8\x80"}', {"a": "\ud83d\ude00"}),
    (b'{"a":"\xc0\xaf"}', REFUSED),  # overlong
    (b'{"a":"\xff"}', REFUSED),
    (b'{"a":1,"a":2}', {"a": 2}),
    (b'{"b":0,"a":1,"b":2}', {"b": 2, "a": 1}),
    (b'{"a":"x\ny"}', REFUSED),
    (b'{"a":"x\ty"}', REFUSED),
    (b'{"a":"\x00"}', REFUSED),
    (b'{"a":"\x1f"}', REFUSED),
    (b'{"a":"\x7f\xe2\x80\xa8"}', {"a": "\x7f\u2028"}),
    (b'{"a":"\\u0000\\n"}', {"a": "\x00\n"}),
    (b'{"a":"\\x41"}', REFUSED),
    (_nested(31), _deep(31)),
    (_nested(32), _deep(32)),
    (_nested(33), REFUSED),
    (_nested(2000), REFUSED),
    (_nested_arrays(32), _deep_arrays(32)),
    (_nested_arrays(33), REFUSED),
    (_nested_arrays(2000), REFUSED),
    (b'{"a":' * 2000, REFUSED),
    (b'{"a":1}x', REFUSED),
    (b'{"a":1}{}', REFUSED),
    (b'{"a":1},', REFUSED),
    (b'{"a":1}\x00', REFUSED),
    (b'{"a":1,}', REFUSED),
    (b'{"a":1', REFUSED),
    (b"", REFUSED),
    (b" ", REFUSED),
    (b"\xef\xbb\xbf", REFUSED),
    (b"null", REFUSED),
    (b"[]", REFUSED),
    (b'"s"', REFUSED),
    (b"12345678901234567890", REFUSED),
    (b"{}", {}),
    (b' \t\r\n{ \t\r\n"a" \t\r\n: \t\r\n[ 1 , 2 ] \t\r\n} \t\r\n', {"a": [1, 2]}),
    (b'{\x0c"a":1}', REFUSED),  # form feed is no JSON whitespace
    (b'{\xc2\xa0"a":1}', REFUSED),  # nor is NBSP
    (b'{"a":1}\xe3\x80\x80', REFUSED),
    (
        b'{"partnerServiceId":"   88899","virtualAccountNo":"   8889900001234567890123"}',
        {"partnerServiceId": "   88899", "virtualAccountNo": "   8889900001234567890123"},
    ),
    (
        b'{"s":"a,1234567890123456789012","t":[":12345678901234567890"]}',
        {"s": "a,1234567890123456789012", "t": [":12345678901234567890"]},
    ),
    (b'{"s":"a,1234567890123456789012","n":1}', {"s": "a,1234567890123456789012", "n": 1}),
    (b'{"a":true,"b":false,"c":null}', {"a": True, "b": False, "c": None}),
    (b'{"a":True}', REFUSED),
    (b"{'a':1}", REFUSED),
]


@pytest.mark.parametrize(("raw", "expected"), EXPLICIT, ids=[repr(raw[:40]) for raw, _ in EXPLICIT])
def test_parse_json_explicit_cases(raw: bytes, expected: Any) -> None:
    actual = assert_same_reading(raw)
    if expected is REFUSED:
        assert actual is None
    else:
        assert actual is not None
        assert canonical(actual) == canonical(expected)


def test_loads_hands_what_orjson_refuses_to_the_slow_path_and_keeps_its_error() -> None:
    seen: list[bytes] = []

    def slow(raw: bytes) -> Any:
        seen.append(raw)
        raise ValueError("slow says no")

    with pytest.raises(ValueError, match="slow says no"):
        loads(b'{"a":', slow)
    assert seen == [b'{"a":']
    assert loads(b'{"a":[1,2.5,"x"]}', slow) == {"a": [1, 2.5, "x"]}  # fast path: slow not asked
    assert seen == [b'{"a":']
    assert loads(b'{"a":12345678901234567890}', json.loads) == {"a": 12345678901234567890}
    assert type(loads(b'{"a":12345678901234567890}', json.loads)["a"]) is int


# -- the callers' round trips ------------------------------------------------------------------

WIB = timezone(timedelta(hours=7))
BILLS: list[Outcome] = [
    *BillStatus,
    Bill("Alice", Decimal("10000.00")),
    Bill("Bob", Decimal("0"), trx_type="O", min_amount=Decimal("1.00"), max_amount=Decimal("5e6")),
    Bill(
        'Ünïcødé 😀 \u2028\x7f "quoted" \\ /',
        Decimal("123456789012345678901234.50"),
        trx_type="V",
        min_amount=Decimal("0.01"),
        expires_at=datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=WIB),
        trx_id="trx-12345678901234567890123",
        email="a@example.com",
        phone="+6281234567890",
        free_text=(FreeText("Pay before noon", "Bayar sebelum siang"), FreeText("é", "\x00")),
        reusable=False,
        currency="USD",
        cache_ttl=30.5,
    ),
    Bill("Zero TTL", Decimal("1"), reusable=True, cache_ttl=0, expires_at=datetime(2030, 1, 1)),
]


@pytest.mark.parametrize("bill", BILLS, ids=lambda bill: repr(bill)[:30])
def test_codec_round_trips_and_writes_what_it_wrote_before(bill: Outcome) -> None:
    encoded = encode_outcome(bill)
    assert decode_outcome(encoded) == bill
    document = json.loads(encoded)
    old = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode(document).encode()
    assert encoded == old


def test_codec_round_trips_an_infinite_cache_ttl() -> None:
    bill = Bill("Alice", Decimal("1"), cache_ttl=math.inf)
    assert decode_outcome(encode_outcome(bill)) == bill


ENTRIES = [
    LedgerEntry("8889900001234", "   88899", "00001234", "   8889900001234", "r1", None, 1.5),
    LedgerEntry(
        "8889900001234",
        "   88899",
        "00001234",
        "   8889900001234",
        "odd \ud800 id \udfff é 😀",
        "trx-1",
        1_700_000_000.123456,
        "VIRTUAL_ACCOUNT_BTN",
        1_700_000_100.5,
    ),
    LedgerEntry("1", "2", "3", "4", "\ud83d", "ü", 0.0, checked_at=2.0),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: repr(entry.inquiry_request_id))
def test_ledger_entry_round_trips_in_ascii(entry: LedgerEntry) -> None:
    encoded = entry.encode()
    assert encoded.isascii()
    assert LedgerEntry.decode(encoded) == entry
    assert LedgerEntry.decode(encoded.decode("ascii")) == entry
    old = json.JSONEncoder(separators=(",", ":")).encode(json.loads(encoded)).encode("ascii")
    assert encoded == old


def test_encoded_bytes_hold_no_more_memory_than_their_length() -> None:
    """What is encoded is kept (the memory cache, the replay store, the journal's lines): each
    must cost about its length, not the encoder's working buffer (orjson's is 4 KiB)."""
    import tracemalloc

    documents = [{"n": "Demo Customer", "a": "25000.00", "i": f"DEMO-{n}"} for n in range(2000)]
    tracemalloc.start()
    try:
        kept = [dumps_utf8(document) for document in documents]
        kept += [dumps_ascii(document) for document in documents]
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert used / len(kept) < 256, f"{used / len(kept):.0f} bytes held per encoded document"
