"""Coalesced writes (gateway.web.protocol._CoalescingTransport).

Unit tests with a recording transport on a real running event loop (asyncio and uvloop), then a
real uvicorn over real sockets serving through the gateway's protocol class. There, the writes
that reach the connection's real transport are counted by a subclass of the bound protocol class
that puts a counting proxy between the real transport and the protocol before the protocol's own
``connection_made`` runs; nothing in gateway code is patched.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.doku.simulator import DokuSimulator
from gateway.web.app import create_app
from gateway.web.protocol import HeadLimits, _CoalescingTransport, protocol_class, server_options

from ..support import Keys, make_settings, poll, running_server

# Unit tests: a recording transport on a real event loop.


@pytest.fixture(params=[pytest.param(False, id="asyncio"), pytest.param(True, id="uvloop")])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return "asyncio", {"use_uvloop": request.param}


class Recorder(asyncio.Transport):
    """The real transport's side: records what the wrapper forwards to it."""

    def __init__(self, buffered: int = 0) -> None:
        super().__init__(extra={"peername": ("203.0.113.7", 40000)})
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False
        self.buffered = buffered
        self.protocol = asyncio.Protocol()

    @property
    def writes(self) -> list[bytes]:
        return [data for name, data in self.calls if name == "write"]

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def pause_reading(self) -> None:
        self.calls.append(("pause_reading", b""))

    def resume_reading(self) -> None:
        self.calls.append(("resume_reading", b""))

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol


def wrap(recorder: Recorder) -> _CoalescingTransport:
    return _CoalescingTransport(recorder, asyncio.get_running_loop())


async def one_turn() -> None:
    """Let the loop run the callbacks scheduled so far (the flush is one of them)."""
    await asyncio.sleep(0)


@pytest.mark.anyio
async def test_writes_of_one_turn_leave_as_one_write() -> None:
    recorder = Recorder()
    transport = wrap(recorder)
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"ok")
    assert recorder.calls == []  # nothing before the end of the turn
    await one_turn()
    assert recorder.calls == [("write", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")]
    await one_turn()
    assert len(recorder.writes) == 1  # and no second, empty or repeated, write later


@pytest.mark.anyio
async def test_writelines_joins_the_turn_too() -> None:
    recorder = Recorder()
    transport = wrap(recorder)
    transport.write(b"a")
    transport.writelines([b"b", b"c"])
    transport.write(b"d")
    await one_turn()
    assert recorder.writes == [b"abcd"]


@pytest.mark.anyio
async def test_writes_of_different_turns_leave_apart_and_in_order() -> None:
    recorder = Recorder()
    transport = wrap(recorder)
    transport.write(b"first")
    await one_turn()
    transport.write(b"second")
    transport.write(b"+")
    await one_turn()
    transport.write(b"third")
    await one_turn()
    await one_turn()
    assert recorder.writes == [b"first", b"second+", b"third"]


@pytest.mark.anyio
async def test_close_right_after_a_write_sends_the_data_first() -> None:
    recorder = Recorder()
    transport = wrap(recorder)
    transport.write(b"head ")
    transport.write(b"body")
    transport.close()
    assert recorder.calls == [("write", b"head body"), ("close", b"")]
    await one_turn()
    await one_turn()
    # The flush scheduled by the first write finds nothing left: no second write.
    assert recorder.calls == [("write", b"head body"), ("close", b"")]


@pytest.mark.anyio
async def test_close_with_nothing_pending_only_closes() -> None:
    recorder = Recorder()
    transport = wrap(recorder)
    transport.write(b"sent")
    await one_turn()
    transport.close()
    assert recorder.calls == [("write", b"sent"), ("close", b"")]
    assert transport.is_closing()


@pytest.mark.anyio
async def test_abort_drops_what_is_pending() -> None:
    recorder = Recorder()
    transport = wrap(recorder)
    transport.write(b"sent earlier")
    await one_turn()
    transport.write(b"never sent")
    assert transport.get_write_buffer_size() == len(b"never sent")
    transport.abort()
    assert transport.get_write_buffer_size() == 0  # gone at once, not only when flushed
    assert recorder.calls == [("write", b"sent earlier"), ("abort", b"")]
    await one_turn()
    await one_turn()
    assert recorder.calls == [("write", b"sent earlier"), ("abort", b"")]


@pytest.mark.anyio
async def test_a_write_once_the_real_transport_is_closing_is_not_forwarded() -> None:
    recorder = Recorder()
    transport = wrap(recorder)
    recorder.closing = True  # e.g. the peer went away
    assert transport.is_closing()
    transport.write(b"too late")
    await one_turn()
    assert recorder.calls == []


@pytest.mark.anyio
async def test_pending_data_is_dropped_when_the_real_transport_closes_before_the_flush() -> None:
    recorder = Recorder()
    transport = wrap(recorder)
    transport.write(b"pending")
    recorder.closing = True
    await one_turn()
    assert recorder.calls == []


@pytest.mark.anyio
async def test_a_write_after_close_is_not_forwarded() -> None:
    recorder = Recorder()
    transport = wrap(recorder)
    transport.close()
    transport.write(b"after close")
    await one_turn()
    assert recorder.calls == [("close", b"")]


@pytest.mark.anyio
async def test_write_buffer_size_counts_pending_bytes() -> None:
    recorder = Recorder(buffered=100)
    transport = wrap(recorder)
    assert transport.get_write_buffer_size() == 100
    transport.write(b"12345")
    transport.write(b"678")
    assert transport.get_write_buffer_size() == 108
    await one_turn()
    assert recorder.writes == [b"12345678"]
    assert transport.get_write_buffer_size() == 100  # no longer pending: the recorder has it


@pytest.mark.anyio
async def test_other_methods_and_attributes_delegate() -> None:
    recorder = Recorder()
    transport = wrap(recorder)
    assert transport.get_extra_info("peername") == ("203.0.113.7", 40000)
    assert transport.get_extra_info("sockname", "none") == "none"
    assert transport.get_protocol() is recorder.protocol  # not defined by the wrapper
    assert transport.buffered == 0  # a plain attribute of the real transport
    transport.pause_reading()
    transport.resume_reading()
    assert recorder.calls == [("pause_reading", b""), ("resume_reading", b"")]
    with pytest.raises(AttributeError):
        _ = transport.no_such_attribute


# A real uvicorn over real sockets.

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LIMITS = HeadLimits(max_bytes=4096, max_count=64, timeout=5.0)
TIMEOUT = 10.0  # every socket operation of a client; a hang fails instead of blocking


def body_for(path: str) -> bytes:
    if path.startswith("/big/"):
        return b"x" * int(path.removeprefix("/big/"))
    return f"answer to {path}".encode()


def expected(path: str, *, close: bool = False) -> bytes:
    """The exact response of :func:`app` (no server and date headers: see :func:`serve`)."""
    body = body_for(path)
    head = f"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {len(body)}\r\n"
    if close:
        head += "connection: close\r\n"
    return head.encode() + b"\r\n" + body


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """Head and body sent in one step (as Starlette's responses do), or, on ``/yield/...``, with a
    turn of the loop between them. Reads the request body first."""
    assert scope["type"] == "http"
    while (await receive()).get("more_body"):
        pass
    path: str = scope["path"]
    body = body_for(path)
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path.startswith("/yield/"):
        await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": body})


@dataclass
class Connection:
    """What one connection's protocol did to its real transport, in order."""

    events: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def writes(self) -> list[bytes]:
        return [data for name, data in self.events if name == "write"]

    def closed_after_writing(self) -> bool:
        """Closed, and nothing written once closed."""
        names = [name for name, _ in self.events]
        return "close" in names and "write" not in names[names.index("close") :]


class CountingTransport:
    """Between the real transport and the protocol: records writes, close and abort."""

    def __init__(self, transport: asyncio.BaseTransport, connection: Connection) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._connection = connection

    def write(self, data: bytes) -> None:
        self._connection.events.append(("write", bytes(data)))
        self._transport.write(data)

    def close(self) -> None:
        self._connection.events.append(("close", b""))
        self._transport.close()

    def abort(self) -> None:
        self._connection.events.append(("abort", b""))
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def counting(
    base: type[HttpToolsProtocol], connections: list[Connection]
) -> type[HttpToolsProtocol]:
    """``base`` (the gateway's bound class, or uvicorn's) with its real transport counted."""

    def connection_made(self: HttpToolsProtocol, transport: asyncio.BaseTransport) -> None:
        connection = Connection()
        connections.append(connection)
        base.connection_made(
            self, cast(asyncio.Transport, CountingTransport(transport, connection))
        )

    return cast(
        "type[HttpToolsProtocol]",
        type(f"Counting{base.__name__}", (base,), {"connection_made": connection_made}),
    )


@dataclass
class Served:
    address: tuple[str, int]
    connections: list[Connection]
    refusals: list[str]

    def connect(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=TIMEOUT)

    def only(self) -> Connection:
        poll(lambda: len(self.connections) >= 1)
        assert len(self.connections) == 1
        return self.connections[0]


@contextmanager
def serve(
    loop: str,
    asgi: Any = app,
    *,
    limits: HeadLimits = LIMITS,
    base: type[HttpToolsProtocol] | None = None,
    counted: bool = True,
    **config: Any,
) -> Iterator[Served]:
    """uvicorn in a thread on a free port, with the gateway's protocol class (or ``base``)."""
    refusals: list[str] = []
    connections: list[Connection] = []
    protocol = protocol_class(limits, refusals.append) if base is None else base
    if counted:
        protocol = counting(protocol, connections)
    options = {"lifespan": "off", "server_header": False, "date_header": False, **config}
    with running_server(asgi, http=protocol, loop=loop, **options) as url:
        host, port = url.removeprefix("http://").split(":")
        yield Served((host, int(port)), connections, refusals)


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> str:
    """The event loop uvicorn runs on."""
    return cast(str, request.param)


@pytest.fixture
def server(loop: str) -> Iterator[Served]:
    with serve(loop) as served:
        yield served


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: gateway", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(sock: socket.socket, buffer: bytearray) -> bytes:
    """One whole response (``content-length`` framed) from ``buffer`` and then the socket."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed in the middle of a head: {bytes(buffer)!r}"
        buffer += chunk
    head_end = buffer.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buffer[:head_end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buffer) < head_end + length:
        chunk = sock.recv(65536)
        assert chunk, f"closed in the middle of a body: {bytes(buffer)!r}"
        buffer += chunk
    response = bytes(buffer[: head_end + length])
    del buffer[: head_end + length]
    return response


def read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def answer(status: int, phrase: str) -> bytes:
    """The gateway protocol's own refusal (gateway.web.protocol), spelled out."""
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(phrase)}\r\nconnection: close\r\n\r\n{phrase}"
    ).encode()


ANSWER_431 = answer(431, "Request Header Fields Too Large")
ANSWER_408 = answer(408, "Request Timeout")


def test_a_response_arrives_whole_in_one_read(loop: str) -> None:
    # Nothing counted here: the gateway's protocol class as it is, measured at the client.
    with serve(loop, counted=False) as served, served.connect() as sock:
        sock.sendall(get("/hello"))
        # One write of a few hundred bytes is one segment on loopback: the first read has it all.
        assert sock.recv(65536) == expected("/hello")
        sock.sendall(get("/big/200000", "Connection: close"))
        assert read_to_end(sock) == expected("/big/200000", close=True)


def test_one_keep_alive_request_is_one_write(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(get("/one"))
        assert sock.recv(65536) == expected("/one")
        assert server.only().events == [("write", expected("/one"))]


def test_a_large_body_is_joined_with_its_head(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(get("/big/300000"))
        assert read_response(sock, bytearray()) == expected("/big/300000")
        assert server.only().writes == [expected("/big/300000")]


def test_twenty_sequential_keep_alive_requests_are_twenty_writes(server: Served) -> None:
    paths = [f"/request/{i}" for i in range(20)]
    with server.connect() as sock:
        for path in paths:
            sock.sendall(get(path))
            assert sock.recv(65536) == expected(path)
        connection = server.only()
        assert connection.writes == [expected(path) for path in paths]
        assert "close" not in [name for name, _ in connection.events]


def test_writes_in_different_turns_stay_apart_and_in_order(server: Served) -> None:
    # The counter does see separate writes: this handler yields between head and body.
    with server.connect() as sock:
        sock.sendall(get("/yield/1"))
        assert read_response(sock, bytearray()) == expected("/yield/1")
        response = expected("/yield/1")
        head_end = response.index(b"\r\n\r\n") + 4
        assert server.only().writes == [response[:head_end], response[head_end:]]


def test_pipelined_requests_in_one_packet_are_answered_in_order(server: Served) -> None:
    paths = [f"/pipelined/{i}" for i in range(10)]
    with server.connect() as sock:
        sock.sendall(b"".join(get(path) for path in paths))
        buffer = bytearray()
        assert [read_response(sock, buffer) for _ in paths] == [expected(p) for p in paths]
        assert buffer == b""
        writes = server.only().writes
    assert b"".join(writes) == b"".join(expected(path) for path in paths)
    assert len(writes) <= len(paths)  # never more than one write per answer


def test_connection_close_request_is_flushed_before_closing(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(get("/last", "Connection: close"))
        assert read_to_end(sock) == expected("/last", close=True)
    connection = server.only()
    assert connection.writes == [expected("/last", close=True)]
    assert connection.closed_after_writing()


def test_interim_100_continue_leaves_before_the_handler_waits_for_the_body(
    server: Served,
) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /continued HTTP/1.1\r\nHost: gateway\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        # The client sends its body only once it has the interim answer: a write kept back
        # while the handler waits for that body would wait for ever (here: TIMEOUT).
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        assert read_response(sock, bytearray()) == expected("/continued")
    assert server.only().writes == [b"HTTP/1.1 100 Continue\r\n\r\n", expected("/continued")]


def test_incomplete_oversized_head_gets_431_then_close(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /big-head HTTP/1.1\r\nX-Big: " + b"a" * 6000)
        assert read_to_end(sock) == ANSWER_431
    connection = server.only()
    assert connection.writes == [ANSWER_431]
    assert connection.closed_after_writing()
    assert server.refusals == ["header_bytes"]


def test_complete_head_with_too_many_headers_gets_431_then_close(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(get("/many", *(f"X-H{i}: 1" for i in range(65))))
        assert read_to_end(sock) == ANSWER_431
    connection = server.only()
    assert connection.writes == [ANSWER_431]
    assert connection.closed_after_writing()
    assert server.refusals == ["header_count"]


def test_oversized_head_on_a_kept_alive_connection_gets_431_then_close(server: Served) -> None:
    with server.connect() as sock:
        sock.sendall(get("/first"))
        assert sock.recv(65536) == expected("/first")
        sock.sendall(get("/second", "X-Big: " + "b" * 6000))
        assert read_to_end(sock) == ANSWER_431
    connection = server.only()
    assert connection.writes == [expected("/first"), ANSWER_431]
    assert connection.closed_after_writing()
    assert server.refusals == ["header_bytes"]


def test_slow_head_gets_408_then_close(loop: str) -> None:
    limits = HeadLimits(max_bytes=4096, max_count=64, timeout=0.3)
    with serve(loop, limits=limits) as served, served.connect() as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        assert read_to_end(sock) == ANSWER_408  # the timer answers and closes
        assert time.monotonic() - started < TIMEOUT
        connection = served.only()
        assert connection.writes == [ANSWER_408]
        assert connection.closed_after_writing()
        assert served.refusals == ["header_timeout"]


def test_the_gateway_app_answers_in_one_write_per_response(loop: str, keys: Keys) -> None:
    settings = make_settings(keys)
    protocol = server_options(settings.http)["http"]
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    request = simulator.token_request()
    token_head = [f"POST {request.path} HTTP/1.1", "Host: gateway"]
    token_head += [f"{name}: {value}" for name, value in request.headers.items()]
    token_head.append(f"Content-Length: {len(request.body)}")
    token = ("\r\n".join(token_head) + "\r\n\r\n").encode() + request.body
    with (
        serve(loop, create_app(settings), base=protocol, lifespan="on") as served,
        served.connect() as sock,
    ):
        buffer = bytearray()
        sock.sendall(get("/livez"))
        livez = read_response(sock, buffer)
        sock.sendall(token)
        issued = read_response(sock, buffer)
        assert livez.startswith(b"HTTP/1.1 200 ")
        assert livez.endswith(b'{"status":"ok"}')
        assert issued.startswith(b"HTTP/1.1 200 ")
        assert b"accessToken" in issued
        assert served.only().writes == [livez, issued]


# Flow control: a handler writing a large body without yielding.

CHUNK = 1 << 20
CHUNKS = 16  # far more than loopback buffers hold while the client reads nothing


@dataclass
class Streamer:
    """An ASGI app sending ``CHUNKS`` body chunks, awaiting nothing but ``send``. It notes
    whether any ``send`` let the loop turn (flow control held it back) before the last one."""

    turned: threading.Event = field(default_factory=threading.Event)
    held_back: list[bool] = field(default_factory=list)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        length = str(CHUNK * CHUNKS).encode()
        asyncio.get_running_loop().call_soon(self.turned.set)
        headers = [(b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        chunk = b"y" * CHUNK
        for sent in range(1, CHUNKS + 1):
            more = sent < CHUNKS
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
            if more and not self.held_back and self.turned.is_set():
                self.held_back.append(True)
        if not self.held_back:
            self.held_back.append(False)


@pytest.mark.parametrize(
    "gateway",
    [
        pytest.param(False, id="uvicorn-protocol"),
        pytest.param(True, id="gateway-protocol"),
    ],
)
def test_flow_control_holds_back_a_handler_that_never_yields(loop: str, gateway: bool) -> None:
    streamer = Streamer()
    base = protocol_class(LIMITS) if gateway else HttpToolsProtocol
    with serve(loop, streamer, base=base) as served, served.connect() as sock:
        sock.sendall(get("/stream"))
        # Read nothing until the handler has either been held back or has sent everything.
        poll(streamer.turned.is_set)
        response = read_response(sock, bytearray())
        assert len(response) > CHUNK * CHUNKS
        assert response.endswith(b"y" * CHUNK)
        largest = max(map(len, served.only().writes))
    assert streamer.held_back == [True], f"never held back; largest write {largest} bytes"
