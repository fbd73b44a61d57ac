"""X-TIMESTAMP parsing and the skew window (spec §4.2, §4.3).

Senders differ: DOKU's Python and Java SDKs send UTC with ``Z``, PHP/Node/Go send ``+07:00``,
DOKU's notification doc shows fractional seconds. A timestamp must carry a zone; a naive one is
refused because its instant is unknowable.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, timedelta, timezone

__all__ = [
    "WIB",
    "epoch_of",
    "format_timestamp",
    "parse_timestamp",
    "seconds_to_wib_midnight",
    "wib_day",
    "wib_day_number",
    "within_window",
]

#: Western Indonesian Time, the day boundary for X-EXTERNAL-ID uniqueness.
WIB = timezone(timedelta(hours=7), "WIB")

_MAX_LENGTH = 40
# The forms DOKU's senders use (spec §4.2): date, 'T', time, optional fraction, then 'Z' or
# ±HH:MM. Other ISO-8601 spellings Python would read (week dates, basic format) are refused.
_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.ASCII)


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO-8601 X-TIMESTAMP with a zone; raise ``ValueError`` otherwise."""
    if not value or len(value) > _MAX_LENGTH or _FORM.fullmatch(value) is None:
        raise ValueError("not an ISO-8601 date-time")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("no time zone")
    return parsed


def epoch_of(value: str) -> float:
    """POSIX time of an X-TIMESTAMP; ``ValueError`` when it is not a zoned ISO-8601 string.

    DOKU sends many requests within one second, all with the same X-TIMESTAMP text, so the
    last few answers are remembered.
    """
    return _epoch_cached(value)


@functools.lru_cache(maxsize=64)
def _epoch_cached(value: str) -> float:
    return parse_timestamp(value).timestamp()


def within_window(moment: datetime, now: float, skew_seconds: float) -> bool:
    """True when ``moment`` lies within ``skew_seconds`` of the POSIX time ``now``."""
    return abs(moment.timestamp() - now) <= skew_seconds


def format_timestamp(moment: datetime | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SS+07:00``, the form in DOKU's samples."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(WIB).isoformat(timespec="seconds")


def wib_day(now: float) -> date:
    """The calendar day in WIB at POSIX time ``now``."""
    return datetime.fromtimestamp(now, WIB).date()


_DAY = 86_400
_WIB_OFFSET = 7 * 3600


def wib_day_number(now: float) -> int:
    """Days since 1970-01-01 in WIB at ``now``: :func:`wib_day` as an integer, cheap enough for
    every request (X-EXTERNAL-ID is unique per partner per WIB day)."""
    return (int(now) + _WIB_OFFSET) // _DAY


def seconds_to_wib_midnight(now: float) -> float:
    """Seconds from ``now`` to the end of its WIB day."""
    return _DAY - ((now + _WIB_OFFSET) % _DAY)
