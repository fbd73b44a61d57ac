"""``/livez``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...metrics import CONTENT_TYPE_LATEST
from ..runtime import Runtime

__all__ = ["HealthHandlers"]


class HealthHandlers:
    def __init__(self, runtime: Runtime, health_timeout: float = 2.0) -> None:
        self.runtime = runtime
        self.health_timeout = health_timeout

    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """200 when every resolver reports healthy; the cache backend is reported, not required
        (a degraded Redis does not stop inquiries being answered)."""
        rt = self.runtime
        resolvers = await rt.resolvers.health(self.health_timeout)
        ready = all(resolvers.values())
        body = {
            "status": "ok" if ready else "unavailable",
            "resolvers": resolvers,
            "state": dict(rt.state.status()),
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        return Response(self.runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
