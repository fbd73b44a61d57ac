"""The response X-TIMESTAMP header, formatted at most once a second."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from .._types import Clock
from ..snap.timestamps import format_timestamp


class TimestampHeader:
    """The response X-TIMESTAMP, formatted at most once per second."""

    __slots__ = ("_clock", "_second", "_value")

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._second = -1
        self._value = ""

    def __call__(self) -> str:
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._value = format_timestamp(datetime.fromtimestamp(second, UTC))
            self._second = second
        return self._value
