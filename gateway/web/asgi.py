"""The transaction endpoints' plumbing, at the ASGI level.

DOKU's calls are the hot path: the gateway must stay within a small factor of a bare Starlette
app's throughput. So the token, inquiry and payment endpoints are plain ASGI callables reached
through :class:`GatewayApp`, which skips Starlette's middleware stack, router and Request/Response
objects for them; everything else (health, metrics, lifespan) is an ordinary Starlette app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from .._eager import Done, first_step
from ..snap.codes import Case
from ..snap.errors import SnapError

__all__ = ["ASGIApp", "Deadlines", "GatewayApp", "RawRequest", "send_json"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[["RawRequest", Send], Awaitable[None]]

_JSON = (b"content-type", b"application/json")


class RawRequest:
    """The parts of an HTTP request the SNAP handlers read, without building a framework object."""

    __slots__ = ("_deadlines", "_headers", "method", "path", "query", "receive")

    def __init__(self, scope: Scope, receive: Receive, deadlines: Deadlines | None = None) -> None:
        self._deadlines = deadlines
        # ASGI servers give lower-case header names; a repeated header keeps its first value
        # (reversed, so the first occurrence is the one that stays in the dict).
        self._headers: dict[bytes, bytes] = dict(reversed(scope["headers"]))
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        query = scope.get("query_string", b"")
        self.query: str = query.decode("latin-1") if query else ""
        self.receive = receive

    def header(self, name: bytes) -> str | None:
        value = self._headers.get(name)
        return None if value is None else value.decode("latin-1")

    def require(self, name: bytes, label: str) -> str:
        value = self._headers.get(name)
        if value is None or not value.strip():
            raise SnapError(Case.MISSING_MANDATORY_FIELD, label)
        return value.decode("latin-1")

    async def body(self, limit: int, timeout: float) -> bytes:
        """The whole body; more than ``limit`` bytes or slower than ``timeout`` is refused."""
        declared = self._headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise SnapError(Case.BAD_REQUEST, detail="invalid Content-Length")
            if int(declared) > limit:
                raise SnapError(Case.BAD_REQUEST, detail=f"body larger than {limit} bytes")
        # The body is nearly always in uvicorn's buffer already: read without a deadline when
        # nothing is waited for, and arm one only when the first read has to wait.
        started = first_step(self._read(limit))
        if isinstance(started, Done):
            return started.value
        deadlines = self._deadlines
        if deadlines is None:
            try:
                async with asyncio.timeout(timeout):
                    return await started
            except TimeoutError:
                raise SnapError(Case.BAD_REQUEST, detail="body not received in time") from None
        # Whatever the client still owes is read under a deadline: one that sends its headers
        # and then nothing must not hold a connection and a handler for ever.
        task = deadlines.watch(timeout)
        try:
            return await started
        except asyncio.CancelledError:
            if deadlines.expired(task):
                raise SnapError(Case.BAD_REQUEST, detail="body not received in time") from None
            raise
        finally:
            deadlines.unwatch(task)

    async def _read(self, limit: int) -> bytes:
        message = await self.receive()
        if message["type"] != "http.request":
            raise SnapError(Case.BAD_REQUEST, detail="client disconnected")
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise SnapError(Case.BAD_REQUEST, detail=f"body larger than {limit} bytes")
            return body
        chunks = [body]
        size = len(body)
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                raise SnapError(Case.BAD_REQUEST, detail="client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise SnapError(Case.BAD_REQUEST, detail=f"body larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def send_json(
    send: Send, status: int, body: bytes, timestamp: str, extra: Mapping[bytes, bytes] | None = None
) -> None:
    headers = [
        _JSON,
        (b"content-length", b"%d" % len(body)),
        (b"x-timestamp", timestamp.encode("latin-1")),
    ]
    if extra:
        headers.extend(extra.items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Deadlines:
    """Cancels requests still reading their body past a deadline, checked every ``tick``.

    A dictionary entry per request instead of a loop timer per request (``asyncio.timeout``
    schedules and cancels one): on the hot path that difference is measurable, and a deadline
    of seconds does not need sub-second precision.
    """

    def __init__(self, tick: float = 0.25) -> None:
        self.tick = tick
        self._watched: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def watch(self, timeout: float) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        self._watched[task] = loop.time() + timeout
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep(), name="doku-gateway-deadlines")
        return task

    def unwatch(self, task: asyncio.Task[Any]) -> None:
        self._watched.pop(task, None)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            return True
        return False

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._watched:
            await asyncio.sleep(self.tick)
            now = loop.time()
            for task, deadline in list(self._watched.items()):
                if deadline <= now:
                    del self._watched[task]
                    self._expired.add(task)
                    task.cancel()

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)


class GatewayApp:
    """Dispatches ``POST`` to the SNAP paths straight to their handlers; all else to Starlette."""

    def __init__(
        self, fallback: ASGIApp, routes: Mapping[str, Handler], deadlines: Deadlines | None = None
    ) -> None:
        self.fallback = fallback
        self.routes = dict(routes)
        self.deadlines = deadlines or Deadlines()
        self.state: Any = getattr(fallback, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.routes.get(scope["path"])
            if handler is not None:
                if scope["method"] == "POST":
                    await handler(RawRequest(scope, receive, self.deadlines), send)
                else:
                    await _not_allowed(send)
                return
        await self.fallback(scope, receive, send)


async def _not_allowed(send: Send) -> None:
    body = b"Method Not Allowed"
    headers = [
        (b"allow", b"POST"),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": 405, "headers": headers})
    await send({"type": "http.response.body", "body": body})
