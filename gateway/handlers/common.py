"""Small pieces every SNAP handler uses."""

from __future__ import annotations

import json
from typing import Any

from ..exceptions import SnapError
from ..snap.codes import Case

__all__ = ["parse_json"]


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object in its own key order; ``4xx00`` when it is not one."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise SnapError(Case.BAD_REQUEST, detail="body is not valid JSON") from None
    if not isinstance(document, dict):
        raise SnapError(Case.BAD_REQUEST, detail="body is not a JSON object")
    return document
