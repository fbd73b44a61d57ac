"""The Batcher's own packer (``gateway._redis.batch._pack``) writes exactly the bytes of
redis-py's ``pack_commands``, or declines (None) and lets redis-py pack; and a batch of either
kind reads back what was written, through a real redis-server."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway._redis.batch import Batcher, _pack

from .support import RedisServer

Command = tuple[Any, ...]

# Names the gateway (and Redis) really use; none with whitespace (redis-py splits those).
NAMES = ["SET", "GET", "EVALSHA", "XACK", "EXISTS", "DEL", "WAIT", "XADD", "PEXPIRE", "INCRBY"]
# redis-py writes an argument longer than this as a chunk of its own (its buffer cutoff).
CUTOFF = 6000
ODD = ["\r\n", "\r", "\n", "\x00", "$", "*", "\u2028", "é", "😀", "\uffff", "\U0010ffff"]

small_bytes = st.binary(max_size=24) | st.sampled_from([b"\r\n", b"\x00", b"$-1\r\n", b"*"])
# Past the cutoff, cheaply: a short pattern repeated (up to ~20 kB).
large_bytes = st.builds(
    lambda pattern, times: pattern * times,
    st.binary(min_size=1, max_size=16),
    st.integers(min_value=CUTOFF // 16 + 1, max_value=1300),
)
# Any Unicode but lone surrogates (UTF-8 "strict" cannot write those; nor can redis-py).
chars = st.characters(exclude_categories=["Cs"])
small_text = st.lists(st.sampled_from(ODD) | chars, max_size=12).map("".join)
large_text = st.builds(
    lambda pattern, times: pattern * times,
    st.text(chars, min_size=1, max_size=8),
    st.integers(min_value=CUTOFF + 1, max_value=9000),
)
integers = st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
floats = st.floats(allow_nan=True, allow_infinity=True)
arguments = st.one_of(small_bytes, small_text, integers, floats, large_bytes, large_text)
commands = st.builds(
    lambda name, args: (name, *args), st.sampled_from(NAMES), st.lists(arguments, max_size=6)
)
batches = st.lists(commands, min_size=1, max_size=8)

# The machine is shared: no per-example deadline.
props = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def redis_py(batch: list[Command]) -> bytes:
    return b"".join(aioredis.Connection().pack_commands(batch))


@props
@given(batches)
def test_pack_writes_the_bytes_redis_py_writes(batch: list[Command]) -> None:
    assert _pack(batch, "utf-8", "strict") == redis_py(batch)


def test_large_arguments_that_redis_py_writes_in_chunks_join_to_the_same_bytes() -> None:
    batch: list[Command] = [
        ("SET", b"k\r\n\x00", bytes(range(256)) * 30, "PX", 1000),  # 7680 bytes
        ("GET", "ключ"),
        ("SET", "v", "ü😀\r\n" * 2000, "NX"),  # 18000 bytes of UTF-8
        ("EVALSHA", "0" * 40, 2, b"a", b"b", -(2**70), 2**70),
    ]
    chunks = aioredis.Connection().pack_commands(batch)
    assert len(chunks) > 1  # redis-py took its large-argument path
    assert _pack(batch, "utf-8", "strict") == b"".join(chunks)


def test_pack_uses_the_given_encoding_for_arguments() -> None:
    batch: list[Command] = [("SET", "é", "\udc80")]
    connection = aioredis.Connection(encoding="latin-1", encoding_errors="surrogateescape")
    packed = _pack(batch, "latin-1", "surrogateescape")
    assert packed == b"".join(connection.pack_commands(batch))
    assert packed == b"*3\r\n$3\r\nSET\r\n$1\r\n\xe9\r\n$1\r\n\x80\r\n"


@pytest.mark.parametrize(
    "command",
    [
        ("SET", "k", True),
        ("SET", "k", False),
        ("SET", "k", memoryview(b"v")),
        ("SET", "k", bytearray(b"v")),
        ("CONFIG GET", "maxmemory"),
        (b"GET", "k"),
    ],
    ids=["true", "false", "memoryview", "bytearray", "name-with-space", "bytes-name"],
)
def test_pack_declines_what_it_does_not_write_like_redis_py(command: Command) -> None:
    assert _pack([command], "utf-8", "strict") is None
    # Anywhere in the batch: the whole batch goes to redis-py.
    assert _pack([("GET", "a"), command, ("GET", "b")], "utf-8", "strict") is None


@pytest.mark.parametrize("name", ["GET\tk", "GET\nk", "GET\r\nk", ""])
def test_pack_matches_redis_py_for_a_name_with_other_whitespace(name: str) -> None:
    batch: list[Command] = [(name,)]
    assert _pack(batch, "utf-8", "strict") in (None, redis_py(batch))


_runs = itertools.count()


async def roundtrip(url: str, values: list[bytes | str | int], fallback: bool = False) -> None:
    """SET each value (keys of this call's own), then GET it: each step one pipeline."""
    client = aioredis.Redis.from_url(url)
    batcher = Batcher(client, 5.0)
    run = next(_runs)
    try:
        keys = [f"pack:{run}:\r\n\x00{n}:ключ".encode() for n in range(len(values))]
        extra: list[Command] = (
            [("SETRANGE", b"pack:fallback", 0, bytearray(b"0.5"))] if fallback else []
        )
        sets: list[Command] = [("SET", k, v) for k, v in zip(keys, values, strict=True)]
        assert (_pack([*sets, *extra], "utf-8", "strict") is None) is fallback
        before = batcher.round_trips
        replies = await asyncio.gather(*(batcher.submit(*c) for c in [*sets, *extra]))
        assert batcher.round_trips == before + 1  # one pipeline for all of them
        assert replies[: len(sets)] == [b"OK"] * len(sets)
        got = await asyncio.gather(*(batcher.submit("GET", k) for k in keys))
        expected = [
            v if isinstance(v, bytes) else v.encode() if isinstance(v, str) else b"%d" % v
            for v in values
        ]
        assert got == expected
    finally:
        await batcher.drain()
        await client.aclose()


@pytest.mark.anyio
async def test_a_batch_reads_back_non_ascii_text_and_binary_bytes(
    redis_server: RedisServer,
) -> None:
    await roundtrip(
        redis_server.url,
        [
            "héllo ☃ 😀 \r\n\x00 \u2028",
            bytes(range(256)),
            bytes(range(256)) * 40,  # 10240 bytes: past redis-py's cutoff
            "ü😀\r\n" * 2000,
            -(2**80),
            b"",
        ],
    )


@pytest.mark.anyio
async def test_a_batch_redis_py_packs_and_a_float_argument_work(
    redis_server: RedisServer,
) -> None:
    await roundtrip(redis_server.url, ["é\r\n", b"\x00\xff", 7], fallback=True)
    client = aioredis.Redis.from_url(redis_server.url)
    batcher = Batcher(client, 5.0)
    try:
        batch: list[Command] = [("INCRBYFLOAT", "f", 1.25)]
        assert _pack(batch, "utf-8", "strict") == redis_py(batch)
        first, second, config = await asyncio.gather(
            batcher.submit("INCRBYFLOAT", "f", 1.25),
            batcher.submit("INCRBYFLOAT", "f", 0.5),
            batcher.submit("CONFIG GET", "port"),  # redis-py splits the name
        )
        assert (first, second) == (b"1.25", b"1.75")
        port = str(redis_server.port).encode()
        assert config in ({b"port": port}, [b"port", port])  # RESP3's map or RESP2's array
        assert await client.get("pack:fallback") == b"0.5"  # the roundtrip's bytearray ran
    finally:
        await batcher.drain()
        await client.aclose()


@settings(
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.one_of(small_bytes, small_text, integers, large_bytes), min_size=1, max_size=6))
def test_any_batch_reads_back_what_it_wrote(
    redis_server: RedisServer, values: list[bytes | str | int]
) -> None:
    # One redis-server for all the examples; every example writes keys of its own.
    asyncio.run(roundtrip(redis_server.url, values))
