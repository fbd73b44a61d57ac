"""The Batcher reads a pipeline's replies straight from redis-py's hiredis reader (one
``gets()`` per reply, not a ``read_response`` coroutine each), with redis-py's own results and
error classes; through a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis._parsers import _AsyncRESP3Parser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from gateway._redis.batch import Batcher

from .support import RedisServer

pytestmark = pytest.mark.anyio

BIG = bytes(range(256)) * 4096  # 1 MiB: its reply takes many reads of the socket


@pytest.fixture
async def make(redis_server: RedisServer) -> AsyncIterator[Callable[..., Any]]:
    """Batchers on clients of the given protocol, each counting its read_response calls."""
    made: list[tuple[Batcher, Any]] = []

    def build(protocol: int = 3, parser: type[Any] | None = None) -> tuple[Batcher, list[int]]:
        options: dict[str, Any] = {"protocol": protocol}
        if parser is not None:
            options["parser_class"] = parser
        client = aioredis.Redis.from_url(redis_server.url, **options)
        batcher = Batcher(client, 5.0)
        calls = [0]
        connection = batcher._connection
        original = connection.read_response

        async def counting(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            return await original(*args, **kwargs)

        connection.read_response = counting
        made.append((batcher, client))
        return batcher, calls

    yield build
    for batcher, client in made:
        await batcher.drain()
        await client.aclose()


async def mixed_batch(batcher: Batcher) -> list[Any]:
    await batcher.submit("SET", "batch:big", BIG)
    await batcher.submit("SET", "batch:text", "é\r\n")
    results = await asyncio.gather(
        batcher.submit("GET", "batch:big"),
        batcher.submit("LPUSH", "batch:text", "x"),  # WRONGTYPE: this command's error
        batcher.submit("EVALSHA", "0" * 40, 0),  # NOSCRIPT
        batcher.submit("GET", "batch:text"),
        batcher.submit("GET", "batch:missing"),
        batcher.submit("EVAL", "return {1, 'a', {2}}", 0),
        return_exceptions=True,
    )
    return list(results)


def check_mixed(results: list[Any]) -> None:
    big, wrongtype, noscript, text, missing, nested = results
    assert big == BIG
    assert isinstance(wrongtype, ResponseError) and "WRONGTYPE" in str(wrongtype)
    assert isinstance(noscript, NoScriptError)
    assert text == "é\r\n".encode()
    assert missing is None
    assert nested == [1, b"a", [2]]


@pytest.mark.parametrize(
    ("protocol", "parser", "hiredis"),
    [(3, None, True), (2, None, True), (3, _AsyncRESP3Parser, False)],
    ids=["resp3-hiredis", "resp2-hiredis", "resp3-python-parser"],
)
async def test_replies_and_errors_are_redis_pys_either_way(
    make: Callable[..., Any], protocol: int, parser: type[Any] | None, hiredis: bool
) -> None:
    batcher, calls = make(protocol, parser)
    await batcher.submit("PING")
    calls[0] = 0  # the connection's handshake (HELLO, CLIENT SETINFO ...) is redis-py's
    results = await mixed_batch(batcher)
    check_mixed(results)
    # On hiredis no read_response at all; with redis-py's own parser, it reads each reply.
    assert (calls[0] == 0) is hiredis
    assert await batcher.submit("GET", "batch:text") == "é\r\n".encode()  # still in step


async def test_a_push_message_before_a_reply_goes_to_redis_pys_handler(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """RESP3 sends out-of-band messages on the same connection (here an invalidation of a key
    the connection read under CLIENT TRACKING): skipped to its handler, the replies stay in
    step."""
    batcher, calls = make(3)
    writer = aioredis.Redis.from_url(redis_server.url)
    try:
        await writer.set("batch:tracked", "old")
        await batcher.submit("CLIENT", "TRACKING", "ON")
        assert await batcher.submit("GET", "batch:tracked") == b"old"
        await writer.set("batch:tracked", "new")  # Redis pushes an invalidation to the batcher
        await writer.ping()  # (sent by then)
        calls[0] = 0
        first, second = await asyncio.gather(
            batcher.submit("GET", "batch:tracked"), batcher.submit("ECHO", "in step")
        )
        assert (first, second) == (b"new", b"in step")
        assert calls[0] == 0
    finally:
        await writer.aclose()


async def test_a_connection_closed_mid_batch_fails_the_rest_then_reconnects(
    make: Callable[..., Any],
) -> None:
    batcher, _ = make(2)  # RESP2: QUIT answers OK and closes (RESP3 clients are told the same)
    await batcher.submit("SET", "batch:k", "v")
    before = batcher.round_trips
    replies = await asyncio.gather(
        batcher.submit("QUIT"),  # Redis answers OK, then closes the connection
        batcher.submit("GET", "batch:k"),
        return_exceptions=True,
    )
    quit_reply, after_quit = replies
    assert quit_reply in (b"OK", True)
    assert isinstance(after_quit, RedisConnectionError)
    assert batcher.round_trips == before + 1  # a reply was read: not sent again
    assert await batcher.submit("GET", "batch:k") == b"v"  # a fresh connection


async def test_scripts_redis_forgot_are_loaded_once_in_the_batch(
    make: Callable[..., Any], redis_server: RedisServer
) -> None:
    """After a Redis restart (SCRIPT FLUSH here) a whole batch of fired scripts fails with
    NOSCRIPT: the script is loaded once, in the batch, and every call sent again; no pool
    connection is opened for it."""
    batcher, _ = make()
    inspector = aioredis.Redis.from_url(redis_server.url)
    source = "return redis.call('INCR', KEYS[1])"
    try:
        sha = await inspector.script_load(source)
        await inspector.script_flush()
        await inspector.config_resetstat()
        await batcher.submit("PING")
        connected = (await inspector.info("clients"))["connected_clients"]
        errors: list[BaseException] = []
        for _ in range(20):
            batcher.fire_script(sha, source, ["batch:count"], [], on_error=errors.append)
        results = await asyncio.gather(
            *(batcher.script(sha, source, ["batch:count"], []) for _ in range(5))
        )
        await batcher.flush()
        assert errors == []
        assert await inspector.get("batch:count") == b"25"
        assert sorted(results) == sorted(set(results))  # five distinct increments
        stats = await inspector.info("commandstats")
        assert stats["cmdstat_script|load"]["calls"] == 1
        assert (await inspector.info("clients"))["connected_clients"] == connected
    finally:
        await inspector.aclose()
