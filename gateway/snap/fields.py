"""Field rules shared by every SNAP body: presence, type, length, pattern.

Each check raises :class:`~gateway.exceptions.SnapError` naming the field with its dotted path
(``additionalInfo.channel``), so DOKU's operators can read what was wrong from the answer alone.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .._json import loads
from .codes import Case
from .errors import SnapError

__all__ = [
    "MAX_JSON_DEPTH",
    "optional_object",
    "optional_str",
    "parse_json",
    "printable_ascii",
    "require_object",
    "require_str",
]

_PRINTABLE = re.compile(r"[\x20-\x7e]+")


def require_object(document: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = document.get(key)
    if value is None:
        raise SnapError(Case.MISSING_MANDATORY_FIELD, path)
    if not isinstance(value, dict):
        raise SnapError(Case.INVALID_FIELD_FORMAT, path)
    return value


def optional_object(document: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SnapError(Case.INVALID_FIELD_FORMAT, path)
    return value


def require_str(
    document: Mapping[str, Any],
    key: str,
    path: str,
    max_length: int,
    pattern: re.Pattern[str] | None = None,
) -> str:
    value = document.get(key)
    if value is None or value == "":
        raise SnapError(Case.MISSING_MANDATORY_FIELD, path)
    return _check_str(value, path, max_length, pattern)


def optional_str(
    document: Mapping[str, Any],
    key: str,
    path: str,
    max_length: int,
    pattern: re.Pattern[str] | None = None,
) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    return _check_str(value, path, max_length, pattern)


def _check_str(value: Any, path: str, max_length: int, pattern: re.Pattern[str] | None) -> str:
    if not isinstance(value, str) or len(value) > max_length:
        raise SnapError(Case.INVALID_FIELD_FORMAT, path)
    if pattern is not None and pattern.fullmatch(value) is None:
        raise SnapError(Case.INVALID_FIELD_FORMAT, path)
    return value


def printable_ascii(value: str) -> bool:
    """X-EXTERNAL-ID rule: 1–64 printable ASCII (DOKU sends 56-character ids with letters)."""
    return 0 < len(value) <= 64 and _PRINTABLE.fullmatch(value) is not None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: valid JSON grammar, but no encoder can write it back
        raise ValueError("number out of range")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's decoder would accept NaN and Infinity


# Built once (json.loads builds a decoder per call as soon as one option is given). Floats go
# through _finite only when a body has one; DOKU's amounts are strings.
_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_constant)


def _strict(raw: bytes) -> Any:
    """The standard library's reading: any JSON encoding, lone surrogates kept."""
    return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))


#: Nesting allowed by default: DOKU's bodies go three levels deep.
MAX_JSON_DEPTH = 32


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The body as a JSON object in its own key order; ``4xx01 Invalid Field Format {body}``
    when it is not strict JSON (``NaN``, a number out of range), not an object, or nested
    more than ``max_depth`` levels (an encoder walking it later would hit the recursion limit).
    """
    try:
        document = loads(raw, _strict)
    except (ValueError, RecursionError):
        raise SnapError(Case.INVALID_FIELD_FORMAT, "body") from None
    if not isinstance(document, dict):
        raise SnapError(Case.INVALID_FIELD_FORMAT, "body")
    # Depth cannot exceed the number of brackets, so the walk runs only for a body with more
    # brackets than the limit: never for DOKU's, which have a handful.
    if raw.count(b"{") + raw.count(b"[") > max_depth and _too_deep(document, max_depth):
        raise SnapError(Case.INVALID_FIELD_FORMAT, "body")
    return document


def _too_deep(document: Any, max_depth: int) -> bool:
    """Whether containers nest more than ``max_depth`` levels (an explicit stack, no recursion)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
