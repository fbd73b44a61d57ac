"""What every SNAP handler needs: bounded body reading, header access, replay keys."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from ..exceptions import SnapError
from ..snap.codes import Case

__all__ = ["parse_json", "read_body", "require_header"]


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, refusing more than ``limit`` bytes or a sender slower than ``timeout``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise SnapError(Case.BAD_REQUEST, detail="invalid Content-Length")
        if int(declared) > limit:
            raise SnapError(Case.BAD_REQUEST, detail=f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise SnapError(Case.BAD_REQUEST, detail=f"body larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise SnapError(Case.BAD_REQUEST, detail="body not received in time") from None
    except ClientDisconnect:
        raise SnapError(Case.BAD_REQUEST, detail="client disconnected") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def require_header(request: Request, name: str) -> str:
    value = request.headers.get(name)
    if value is None or not value.strip():
        raise SnapError(Case.MISSING_MANDATORY_FIELD, name)
    return value


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object in its own key order; ``4xx00`` when it is not one."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise SnapError(Case.BAD_REQUEST, detail="body is not valid JSON") from None
    if not isinstance(document, dict):
        raise SnapError(Case.BAD_REQUEST, detail="body is not a JSON object")
    return document
