"""A SNAP answer as a Starlette response, for the fake DOKU."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response


def snap_response(
    status: int, body: bytes, timestamp: str, extra: Mapping[str, str] | None = None
) -> Response:
    headers = {"X-TIMESTAMP": timestamp}
    if extra:
        headers.update(extra)
    return Response(body, status_code=status, headers=headers, media_type="application/json")
