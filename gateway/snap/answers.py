"""SNAP JSON answers: error bodies from the code table, JSON bytes as DOKU expects them.

The HTTP status always equals the first three digits of ``responseCode``.
"""

from __future__ import annotations

import json
from typing import Any

from .._json import dumps_utf8
from .codes import Case, Service, response_code
from .errors import SnapError

_ASCII = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


def json_bytes(document: Any) -> bytes:
    """Compact UTF-8 JSON; ``\\uXXXX`` escapes where a string holds a lone surrogate (valid in
    JSON text, not encodable as UTF-8), so echoing a strange request never crashes an answer."""
    try:
        return dumps_utf8(document)
    except UnicodeEncodeError:
        return _ASCII.encode(document).encode("ascii")


def error_message(error: SnapError) -> str:
    """``Missing Mandatory Field {X-TIMESTAMP}``, ``Unauthorized. Signature``, …"""
    case = error.case
    if error.field:
        return f"{case.message} {{{error.field}}}"
    if error.detail:
        separator = "." if case is Case.UNAUTHORIZED else ":"
        return f"{case.message}{separator} {error.detail}"
    return case.message


def error_body(error: SnapError, service: Service) -> tuple[int, dict[str, Any]]:
    code = response_code(error.case, service)
    return code.http_status, {"responseCode": code.code, "responseMessage": error_message(error)}
