"""uvicorn's httptools protocol with limits on the request head: size, header count, and time.

uvicorn buffers a request head of any size: httptools joins the pieces of a header value with
repeated ``bytes +=`` (quadratic in its length) and uvicorn keeps the URL the same way, so one
client sending a 64 MiB header stalls every other request for seconds and leaves the process
larger for good; and a client that trickles its head is never cut off. This subclass counts the
bytes of a head as they arrive, so the parser never holds more than the limit plus one socket
read, refuses too many headers before the application sees the request, and closes a connection
whose head is not complete in time.

Reads are counted from the one that begins a head. While the head is incomplete every byte
counted belongs to it; once complete, the count is an upper bound of its size (the last read may
hold body bytes too), so only a head whose count passed the limit, or that began in the middle of
a read (pipelined behind another request), is measured exactly.
"""

from __future__ import annotations

import asyncio
import http
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import HttpSettings
from ..log import get_logger
from ..metrics import Metrics

__all__ = ["HeadLimits", "LimitedHttpToolsProtocol", "protocol_class", "server_options"]

_log = get_logger("protocol")

#: ``reason`` given to the refusal callback (a metric label).
HEADER_BYTES, HEADER_COUNT, HEADER_TIMEOUT = "header_bytes", "header_count", "header_timeout"


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """What a request head may be: ``max_bytes`` (request line and headers), ``max_count``
    headers, received within ``timeout`` seconds."""

    max_bytes: int = 16_384
    max_count: int = 64
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> HeadLimits:
        return cls(settings.max_header_bytes, settings.max_headers, settings.header_timeout)


class _Refused(Exception):
    """Raised inside a parser callback to stop httptools once the answer has been sent."""


def _answer(status: int) -> bytes:
    phrase = http.HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(phrase)}\r\n"
        "connection: close\r\n\r\n"
        f"{phrase}"
    ).encode("ascii")


_ANSWERS = {431: _answer(431), 408: _answer(408)}


#: Pending bytes written at once rather than at the end of the turn (answers are far smaller).
_COALESCE_LIMIT = 64 * 1024


class _CoalescingTransport:
    """The connection's transport, with the writes of one turn of the event loop sent together.

    uvicorn writes a response's head and its body separately: two ``send`` system calls and, on
    the wire, two segments for every answer of a few hundred bytes. Writes made in the same turn
    (a handler sends both in one step) are joined and written once, at the end of that turn;
    order is kept, and close() and abort() see them first.
    """

    __slots__ = ("_loop", "_pending", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))  # a copy of a mutable buffer, as transports take
        self._size += len(data)
        if self._size >= _COALESCE_LIMIT:
            # A large or streamed body goes out now, so that the transport's flow control
            # (pause_writing, and uvicorn waiting for the drain) holds its sender back.
            self._flush()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._size = 0
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._size = 0
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` enforcing :attr:`limits`; build one with
    :func:`protocol_class` and give it to uvicorn as ``http=``."""

    limits: ClassVar[HeadLimits] = HeadLimits()
    #: Called with the reason of each refusal (``header_bytes``, ``header_count``,
    #: ``header_timeout``), e.g. to count it. Read through the class, so a plain function.
    on_refusal: ClassVar[Callable[[str], None] | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Loop time at which the head being read began; None between heads.
        self._head_since: float | None = None
        # Bytes of the reads since then; all of the head's when it began with a read.
        self._head_bytes = 0
        self._head_whole = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # Connection and read events.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn's flow control keeps the real transport (pausing reads, buffer limits).
        self.transport = _CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        # A new connection owes its first head at once: uvicorn itself arms no timer before
        # its first answer, so a client that connects and sends nothing would stay for ever.
        self._head_since = self.loop.time()
        self._head_timer = self.loop.call_later(self.limits.timeout, self._check_head)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_since = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received plus the count; its answer to a malformed request (400)
        # must not follow a refusal that has answered already.
        if self._refused:
            return
        if self._head_since is not None:
            self._head_bytes += len(data)
        elif self.cycle is None or not self.cycle.more_body:
            # The previous request has all its body: this read begins the next head, or goes
            # on with one begun in the middle of the previous read, behind a pipelined request
            # (uvicorn's scope has no method until its head is complete). The clock starts
            # here; the idle time before is uvicorn's keep-alive timeout.
            self._head_since = self.loop.time()
            self._head_bytes = len(data)
            self._head_whole = self.scope is None or "method" in self.scope
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self._refused:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        if self._head_since is not None and self._head_bytes > self.limits.max_bytes:
            # The head is still incomplete, so every byte counted belongs to it.
            self._refuse(431, HEADER_BYTES)

    # Parser callbacks.

    def on_headers_complete(self) -> None:
        limits = self.limits
        # Measured exactly only when the count is not a bound of the head's size: it passed the
        # limit (the last read may hold body bytes too), or the head began in the middle of a
        # read (no count at all, or one that missed its start).
        whole = self._head_since is not None and self._head_whole
        if (not whole or self._head_bytes > limits.max_bytes) and (
            len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            > limits.max_bytes
        ):
            self._refuse(431, HEADER_BYTES)
            raise _Refused
        if len(self.headers) > limits.max_count:
            self._refuse(431, HEADER_COUNT)
            raise _Refused
        self._head_since = None
        super().on_headers_complete()

    # Limits.

    def _check_head(self) -> None:
        """Timer, about once per ``timeout`` per connection: cut a head taking too long."""
        self._head_timer = None
        if self.transport.is_closing():
            return
        timeout = self.limits.timeout
        now = self.loop.time()
        since = self._head_since
        if since is not None and now - since >= timeout:
            if self.scope is None:
                # Not one byte since the connection was made: close it without an answer.
                self._head_since = None
                self.transport.close()
            else:
                self._refuse(408, HEADER_TIMEOUT)
            return
        delay = timeout if since is None else since + timeout - now
        self._head_timer = self.loop.call_later(delay, self._check_head)

    def _refuse(self, status: int, reason: str) -> None:
        self._refused = True
        self._head_since = None
        peer = self.client[0] if self.client else "-"
        # DEBUG: a flood must not become a flood of log lines; the metric counts every one.
        _log.debug("request head from %s refused: %s (%d)", peer, reason, status)
        report = type(self).on_refusal
        if report is not None:
            report(reason)
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.write(_ANSWERS[status])
            self.transport.close()
        else:
            # The answer to an earlier (pipelined) request is still being written: let it
            # finish, read nothing more, and close after it.
            cycle.keep_alive = False
            self.flow.pause_reading()


def protocol_class(
    limits: HeadLimits, on_refusal: Callable[[str], None] | None = None
) -> type[LimitedHttpToolsProtocol]:
    """A :class:`LimitedHttpToolsProtocol` bound to ``limits``, for ``uvicorn.Config(http=...)``.

    A class per server rather than per-instance arguments: uvicorn builds each connection's
    protocol itself, from the class it was given."""

    class Bound(LimitedHttpToolsProtocol):
        pass

    Bound.limits = limits
    Bound.on_refusal = on_refusal
    return Bound


def server_options(settings: HttpSettings, metrics: Metrics | None = None) -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that put :attr:`HttpSettings` head limits in force,
    refusals counted in ``doku_gateway_refused_request_heads_total`` when ``metrics`` is given."""
    report = (
        None if metrics is None else (lambda reason: metrics.refused_heads.labels(reason).inc())
    )
    return {"http": protocol_class(HeadLimits.from_settings(settings), report)}
