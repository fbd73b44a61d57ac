"""Field rules shared by every SNAP body: presence, type, length, pattern.

Each check raises :class:`~gateway.exceptions.SnapError` naming the field with its dotted path
(``additionalInfo.channel``), so DOKU's operators can read what was wrong from the answer alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .codes import Case
from .errors import SnapError

__all__ = [
    "optional_object",
    "optional_str",
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


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object in its own key order; ``4xx01 Invalid Field Format {body}``
    when it is not JSON, or not an object."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise SnapError(Case.INVALID_FIELD_FORMAT, "body") from None
    if not isinstance(document, dict):
        raise SnapError(Case.INVALID_FIELD_FORMAT, "body")
    return document
