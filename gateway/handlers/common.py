"""Small pieces every SNAP handler uses."""

from __future__ import annotations

import json
from typing import Any

from ..exceptions import SnapError
from ..snap.codes import Case

__all__ = ["parse_json"]


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
