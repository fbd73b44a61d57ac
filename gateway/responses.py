"""SNAP JSON answers: error bodies from the code table, success bodies as given.

The HTTP status always equals the first three digits of ``responseCode``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from .exceptions import SnapError
from .snap.codes import Case, Service, response_code
from .snap.timestamps import format_timestamp

__all__ = ["Clock", "TimestampHeader", "error_body", "error_message", "json_bytes", "snap_response"]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))

Clock = Callable[[], float]


def json_bytes(document: Any) -> bytes:
    """Compact UTF-8 JSON; ``\\uXXXX`` escapes where a string holds a lone surrogate (valid in
    JSON text, not encodable as UTF-8), so echoing a strange request never crashes an answer."""
    text = _ENCODER.encode(document)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _ASCII.encode(document).encode("ascii")


def error_message(error: SnapError) -> str:
    """``Missing Mandatory Field {X-TIMESTAMP}``, ``Unauthorized. Signature``, …"""
    case = error.case
    assert isinstance(case, Case)
    if error.field:
        return f"{case.message} {{{error.field}}}"
    if error.detail:
        separator = "." if case is Case.UNAUTHORIZED else ":"
        return f"{case.message}{separator} {error.detail}"
    return case.message


def error_body(error: SnapError, service: Service) -> tuple[int, dict[str, Any]]:
    assert isinstance(error.case, Case)
    code = response_code(error.case, service)
    return code.http_status, {"responseCode": code.code, "responseMessage": error_message(error)}


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


def snap_response(
    status: int, body: bytes, timestamp: str, extra: Mapping[str, str] | None = None
) -> Response:
    headers = {"X-TIMESTAMP": timestamp}
    if extra:
        headers.update(extra)
    return Response(body, status_code=status, headers=headers, media_type="application/json")
