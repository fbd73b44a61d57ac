"""Request-head limits (gateway.web.protocol) on a real uvicorn over real sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from gateway.doku.simulator import DokuSimulator, inquiry_body
from gateway.exceptions import ConfigError
from gateway.metrics import Metrics
from gateway.web.app import create_app
from gateway.web.protocol import HeadLimits, server_options

from ..support import Keys, make_settings, running_server

INQUIRY = "/v1.1/transfer-va/inquiry"
TOKEN = "/v1.0/access-token/b2b"


@dataclass
class Server:
    url: str
    metrics: Metrics

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def refused(self, reason: str) -> float:
        return self.metrics.refused_heads.labels(reason).value


@pytest.fixture
def server(keys: Keys) -> Iterator[Server]:
    settings = make_settings(keys, http={"max_header_bytes": 4096, "header_timeout": 0.5})
    metrics = Metrics()
    app = create_app(settings, metrics=metrics)
    with running_server(app, **server_options(settings.http, metrics)) as url:
        yield Server(url, metrics)


def exchange(server: Server, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(server.address, timeout=timeout) as sock:
        sock.sendall(data)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def head(path: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def test_incomplete_head_over_the_limit_gets_431(server: Server) -> None:
    # No end of head: the limit is reached while reading, before the parser has it all.
    answer = exchange(server, b"POST " + INQUIRY.encode() + b" HTTP/1.1\r\nX-Big: " + b"a" * 6000)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert answer.endswith(b"Request Header Fields Too Large")
    assert server.refused("header_bytes") == 1


def test_complete_head_over_the_limit_in_one_read_gets_431(server: Server) -> None:
    answer = exchange(server, head(INQUIRY, [("X-Big", "b" * 5000)]))
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert server.refused("header_bytes") == 1


def test_too_many_headers_get_431(server: Server) -> None:
    answer = exchange(server, head(INQUIRY, [(f"X-H{i}", "1") for i in range(65)]))
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert server.refused("header_count") == 1


def test_headers_at_the_limits_pass(server: Server, keys: Keys) -> None:
    # 64 headers in all, the head just under 4096 bytes: answered by the app (a SNAP refusal
    # for the missing signature headers), not by the limit.
    extra = [(f"X-H{i}", "c" * 40) for i in range(61)]
    data = head(TOKEN, extra, b"{}")
    assert len(data) < 4096
    answer = exchange(server, data.replace(b"Host: gateway", b"Host: gateway\r\nConnection: close"))
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"4007302" in answer
    assert server.refused("header_bytes") == server.refused("header_count") == 0


def test_body_in_the_same_read_as_the_head_is_not_counted_as_head(
    server: Server, keys: Keys
) -> None:
    # A signed token request whose body (50 KB) arrives in the same read as its head: the read
    # is far over 4096 bytes, the head is not.
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    request = simulator.token_request()
    body = json.dumps({"grantType": "client_credentials", "additionalInfo": {"p": "x" * 50_000}})
    headers = [*request.headers.items(), ("Connection", "close")]
    answer = exchange(server, head(TOKEN, headers, body.encode()))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"2007300" in answer


def test_trickled_head_is_cut_after_the_timeout(server: Server) -> None:
    answer = b""
    # The server's clock starts when it accepts: start ours before connecting.
    started = time.monotonic()
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.settimeout(0.05)
        sock.sendall(b"POST " + INQUIRY.encode() + b" HTTP/1.1\r\nX-Slow: ")
        # One header byte per 50 ms (the wait for an answer paces it), far under every byte
        # limit: only the clock can stop it.
        for _ in range(100):
            try:
                sock.sendall(b"a")
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            break
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    # (the event loop's timers may fire a millisecond early)
    assert 0.49 <= elapsed < 5
    assert server.refused("header_timeout") == 1


def test_connection_that_sends_nothing_is_closed(server: Server) -> None:
    started = time.monotonic()  # before connecting: the server's clock starts at accept
    with socket.create_connection(server.address, timeout=5) as sock:
        answer = read_all(sock)
        elapsed = time.monotonic() - started
    assert answer == b""  # closed without an answer: nothing was asked
    assert 0.49 <= elapsed < 5  # (the event loop's timers may fire a millisecond early)


def test_kept_alive_connection_serves_requests_and_cuts_a_slow_next_head(
    server: Server, keys: Keys
) -> None:
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    with socket.create_connection(server.address, timeout=5) as sock:
        for _ in range(3):  # several requests, each well within the limits, on one connection
            request = simulator.token_request()
            sock.sendall(head(TOKEN, list(request.headers.items()), request.body))
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
        sock.sendall(b"POST " + TOKEN.encode() + b" HTTP/1.1\r\nX-Half: ")
        started = time.monotonic()
        answer = read_all(sock)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert elapsed < 5


def test_pipelined_requests_are_all_answered(server: Server, keys: Keys) -> None:
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    *first, last = [simulator.token_request() for _ in range(3)]
    stream = b"".join(head(TOKEN, list(r.headers.items()), r.body) for r in first)
    stream += head(TOKEN, [*last.headers.items(), ("Connection", "close")], last.body)
    answer = exchange(server, stream)
    assert answer.count(b"HTTP/1.1 200 ") == 3
    assert answer.count(b"2007300") == 3


def test_signed_inquiry_through_the_limited_protocol(server: Server, keys: Keys) -> None:
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    with httpx.Client(base_url=server.url, timeout=5) as client:
        token_request = simulator.token_request()
        token = client.post(TOKEN, headers=token_request.headers, content=token_request.body)
        request = simulator.inquiry_request(
            token.json()["accessToken"], inquiry_body("8889900001234", "   88899")
        )
        response = client.post(INQUIRY, headers=request.headers, content=request.body)
    assert response.json()["responseCode"] == "2002400"


def test_oversized_head_pipelined_behind_a_request_closes_after_its_answer(
    server: Server, keys: Keys
) -> None:
    # The second head begins in the middle of a read, behind the first request's body: it is
    # measured when complete. The first request is still answered, then the connection closes.
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    first = simulator.token_request()
    stream = head(TOKEN, list(first.headers.items()), first.body)
    stream += head(TOKEN, [("X-Big", "d" * 5000)], b"{}")
    answer = exchange(server, stream)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"2007300" in answer
    assert answer.count(b"HTTP/1.1 ") == 1
    assert server.refused("header_bytes") == 1


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_header_bytes", 1000),
        ("max_headers", 15),
        ("header_timeout", 0),
        ("max_json_depth", 3),
        ("max_json_depth", 513),  # deeper would near Python's recursion limit
    ],
)
def test_limits_out_of_range_are_configuration_errors(keys: Keys, key: str, value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(keys, http={key: value})
    assert caught.value.key == f"http.{key}"


def test_limits_come_from_the_http_settings(keys: Keys) -> None:
    settings = make_settings(
        keys, http={"max_header_bytes": 2048, "max_headers": 20, "header_timeout": 2.5}
    )
    protocol = server_options(settings.http)["http"]
    assert protocol.limits == HeadLimits(2048, 20, 2.5)
    assert protocol.on_refusal is None
    assert HeadLimits.from_settings(make_settings(keys).http) == HeadLimits(16_384, 64, 10.0)
