from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.snap.amounts import format_amount, is_amount, parse_amount

# The spec regex, ASCII digits only (a str pattern's \d would take any Unicode digit).
SNAP_AMOUNT = re.compile(r"^[0-9]{1,16}\.[0-9]{2}$")
LIMIT = 10**16

# Exact amounts below 10^16 with zero, one or two decimals.
amounts = st.one_of(
    st.integers(min_value=0, max_value=LIMIT - 1).map(Decimal),
    st.integers(min_value=0, max_value=LIMIT * 10 - 1).map(lambda n: Decimal(n).scaleb(-1)),
    st.integers(min_value=0, max_value=LIMIT * 100 - 1).map(lambda n: Decimal(n).scaleb(-2)),
)


@given(amounts)
def test_format_then_parse_round_trips(value: Decimal) -> None:
    text = format_amount(value)
    assert SNAP_AMOUNT.fullmatch(text)
    assert is_amount(text)
    assert parse_amount(text) == value


@given(st.integers(min_value=0, max_value=LIMIT * 100 - 1))
def test_parse_then_format_round_trips(cents: int) -> None:
    text = f"{cents // 100}.{cents % 100:02d}"
    assert format_amount(parse_amount(text)) == text


@given(st.integers(min_value=0, max_value=LIMIT * 1000 - 1).filter(lambda n: n % 10 != 0))
def test_refuses_three_decimals(mills: int) -> None:
    with pytest.raises(ValueError):
        format_amount(Decimal(mills).scaleb(-3))


@given(amounts.filter(lambda d: d > 0))
def test_refuses_negatives(value: Decimal) -> None:
    with pytest.raises(ValueError):
        format_amount(-value)


@given(st.integers(min_value=LIMIT, max_value=LIMIT * 10**6), st.sampled_from([0, 1, 2]))
def test_refuses_1e16_and_above(units: int, places: int) -> None:
    value = Decimal(units)
    with pytest.raises(ValueError):
        format_amount(value)
    with pytest.raises(ValueError):
        format_amount(value + Decimal(1).scaleb(-places))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_refuses_floats(value: float) -> None:
    with pytest.raises(ValueError):
        format_amount(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity"])
def test_refuses_non_finite(value: str) -> None:
    with pytest.raises(ValueError):
        format_amount(Decimal(value))


@pytest.mark.parametrize("value", [10000, "10000.00", None, True])
def test_refuses_non_decimals(value: Any) -> None:
    with pytest.raises(ValueError):
        format_amount(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0"), "0.00"),
        (Decimal("-0"), "0.00"),
        (Decimal("-0.00"), "0.00"),
        (Decimal("25000"), "25000.00"),
        (Decimal("1E+3"), "1000.00"),
        (Decimal("0.5"), "0.50"),
        (Decimal("10.100"), "10.10"),
        (Decimal("9999999999999999.99"), "9999999999999999.99"),
    ],
)
def test_format_examples(value: Decimal, text: str) -> None:
    assert format_amount(value) == text


@pytest.mark.parametrize("value", ["1E+16", "10000000000000000.00", "10.005", "0.001", "-0.01"])
def test_format_refuses_examples(value: str) -> None:
    with pytest.raises(ValueError):
        format_amount(Decimal(value))


@given(st.text(max_size=24))
def test_parse_accepts_only_the_snap_form(text: str) -> None:
    if SNAP_AMOUNT.fullmatch(text):
        assert parse_amount(text) == Decimal(text)
    else:
        assert not is_amount(text)
        with pytest.raises(ValueError):
            parse_amount(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "25000",
        "25000.0",
        "25000.000",
        "-1.00",
        "+1.00",
        " 1.00",
        "1.00 ",
        "1.00\n",
        "1,000.00",
        "1e3.00",
        "12345678901234567.00",
        "١٢.٠٠",  # Arabic-Indic digits: \d without re.ASCII would take them
        "１.００",  # full-width digits
    ],
)
def test_parse_refuses_examples(text: str) -> None:
    assert not is_amount(text)
    with pytest.raises(ValueError):
        parse_amount(text)


@pytest.mark.parametrize("value", [Decimal("1.00"), 1.0, 100, None, b"1.00"])
def test_parse_refuses_non_strings(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_amount(value)
