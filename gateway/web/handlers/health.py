"""``/livez``, ``/readyz`` and ``/metrics``.

Readiness follows what the pod can do for DOKU: it is ready while it can answer inquiries (a
resolver is healthy) *or* record payment notifications (the journal is writable). A resolver's
database being down must not take every pod out of the Service: payment notifications need only
the journal. After SIGTERM the pod drains: ``/readyz`` answers 503 while in-flight requests
finish.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...log import get_logger
from ...metrics import CONTENT_TYPE_LATEST
from ...payments.journal.base import Journal
from ..runtime import Runtime

__all__ = ["HealthHandlers"]

_log = get_logger("health")


class HealthHandlers:
    def __init__(self, runtime: Runtime, journal: Journal, health_timeout: float = 2.0) -> None:
        self.runtime = runtime
        self.journal = journal
        self.health_timeout = health_timeout
        self.draining = False

    def drain(self) -> None:
        """From now on ``/readyz`` answers 503, so the Service stops sending new requests."""
        self.draining = True

    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """200 while inquiries *or* payments can be handled; the body says which."""
        rt = self.runtime
        resolvers = await rt.resolvers.health(self.health_timeout)
        for name, up in resolvers.items():
            rt.metrics.resolver_up.labels(name).set(1 if up else 0)
        state = dict(rt.state.status())
        journal = await self._journal_status()
        inquiries = any(resolvers.values())
        payments = bool(journal["writable"])
        if self.draining:
            status = "draining"
        elif inquiries and payments:
            status = "ok"
        elif inquiries or payments:
            status = "degraded"
        else:
            status = "unavailable"
        body = {
            "status": status,
            "inquiries": inquiries,
            "payments": payments,
            "resolvers": resolvers,
            "journal": journal,
            "state": state,
        }
        ready = status in ("ok", "degraded")
        return JSONResponse(body, status_code=200 if ready else 503)

    async def _journal_status(self) -> dict[str, Any]:
        settings = self.runtime.settings
        if settings.journal_on_redis:
            # Reading the backlog is a round trip to the journal's own Redis connections: it
            # answers exactly when a notification could be recorded.
            try:
                async with asyncio.timeout(self.health_timeout):
                    await self.journal.backlog()
            except Exception as exc:
                _log.debug("journal not reachable: %s", exc)
                return {"backend": "redis", "writable": False}
            return {"backend": "redis", "writable": True}
        writable = await asyncio.to_thread(_writable_dir, Path(settings.payment.journal_dir))
        return {"backend": "file", "writable": writable}

    async def metrics(self, request: Request) -> Response:
        metrics = self.runtime.metrics
        try:
            async with asyncio.timeout(self.health_timeout):
                backlog, oldest = await self.journal.backlog()
        except Exception as exc:
            # The scrape still answers; the gauges keep their last values.
            _log.debug("journal backlog not sampled: %s", exc)
        else:
            metrics.journal_backlog.set(backlog)
            age = 0.0 if oldest is None else max(0.0, self.runtime.clock() - oldest)
            metrics.journal_oldest.set(age)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _writable_dir(directory: Path) -> bool:
    return directory.is_dir() and os.access(directory, os.W_OK | os.X_OK)
