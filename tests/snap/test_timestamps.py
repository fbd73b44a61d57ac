from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.snap.timestamps import (
    WIB,
    format_timestamp,
    parse_timestamp,
    seconds_to_wib_midnight,
    wib_day,
    wib_day_number,
    within_window,
)

T = 1_714_533_330  # 2024-05-01T10:15:30+07:00


@pytest.mark.parametrize(
    ("value", "instant", "offset_hours"),
    [
        ("2024-05-01T03:15:30Z", T, 0),  # Python / Java SDK
        ("2024-05-01T10:15:30+07:00", T, 7),  # PHP / Node / Go SDK, DOKU samples
        ("2024-05-01T03:15:30.000Z", T, 0),  # DOKU notification doc
        ("2024-05-01T10:15:30.250+07:00", T + 0.25, 7),
        ("2024-05-01T10:15:30.123456+07:00", T + 0.123456, 7),
        ("2024-04-30T22:15:30-05:00", T, -5),
    ],
)
def test_parse_accepts_zoned_iso_timestamps(value: str, instant: float, offset_hours: int) -> None:
    parsed = parse_timestamp(value)
    assert parsed.timestamp() == pytest.approx(instant, abs=1e-6)
    assert parsed.utcoffset() == timedelta(hours=offset_hours)


def test_parse_accepts_exactly_forty_characters() -> None:
    value = "2024-05-01T10:15:30." + "1" * 14 + "+07:00"
    assert len(value) == 40
    assert parse_timestamp(value).timestamp() == pytest.approx(T + 0.111111)


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T10:15:30",  # naive: the instant is unknowable
        "2024-05-01T10:15:30.000",
        "2024-05-01",  # date only
        "2024-05-01+07:00",
        "garbage",
        "garbageT",
        "T",
        "",
        "2024-13-01T10:15:30+07:00",
        "2024-05-01T24:00:00Z",
        "1714533330",
    ],
)
def test_parse_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_parse_refuses_an_over_long_value_it_could_otherwise_read() -> None:
    value = "2024-05-01T10:15:30." + "1" * 15 + "+07:00"
    assert len(value) == 41
    assert datetime.fromisoformat(value).tzinfo is not None
    with pytest.raises(ValueError):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("now", "skew", "inside"),
    [
        (T, 300, True),
        (T + 300, 300, True),
        (T - 300, 300, True),
        (T + 300.001, 300, False),
        (T - 300.001, 300, False),
        (T + 3600, 300, False),
        (T, 0, True),
        (T + 0.5, 0, False),
    ],
)
def test_within_window_edges(now: float, skew: float, inside: bool) -> None:
    moment = parse_timestamp("2024-05-01T10:15:30+07:00")
    assert within_window(moment, now, skew) is inside


def test_within_window_compares_instants_not_wall_times() -> None:
    utc = parse_timestamp("2024-05-01T03:15:30Z")
    wib = parse_timestamp("2024-05-01T10:15:30+07:00")
    assert within_window(utc, T, 0) and within_window(wib, T, 0)
    # The same wall time in the other zone is seven hours away.
    assert not within_window(parse_timestamp("2024-05-01T10:15:30Z"), T, 300)


def test_wib_day_boundary_is_17_utc() -> None:
    before = parse_timestamp("2024-05-01T16:59:59Z").timestamp()
    after = parse_timestamp("2024-05-01T17:00:00Z").timestamp()
    assert wib_day(before) == date(2024, 5, 1)
    assert wib_day(after) == date(2024, 5, 2)
    assert wib_day(parse_timestamp("2024-05-01T00:00:00+07:00").timestamp()) == date(2024, 5, 1)


def test_wib_is_utc_plus_seven() -> None:
    assert WIB.utcoffset(None) == timedelta(hours=7)


def test_format_timestamp_writes_wib_to_the_second() -> None:
    moment = datetime(2024, 5, 1, 3, 15, 30, 999_999, tzinfo=UTC)
    assert format_timestamp(moment) == "2024-05-01T10:15:30+07:00"
    assert parse_timestamp(format_timestamp(moment)).timestamp() == T


def test_format_timestamp_defaults_to_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    value = format_timestamp()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", value)
    assert before <= parse_timestamp(value) <= after


def test_wib_day_number_and_midnight_agree_with_wib_day() -> None:
    for moment in (0.0, 1_714_582_799.0, 1_714_582_800.0, 1_714_600_000.5):
        assert date(1970, 1, 1) + timedelta(days=wib_day_number(moment)) == wib_day(moment)
        left = seconds_to_wib_midnight(moment)
        assert 0 < left <= 86_400
        assert wib_day(moment + left) == wib_day(moment) + timedelta(days=1)
        assert wib_day(moment + left - 0.5) == wib_day(moment)
