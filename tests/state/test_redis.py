"""The Redis backend against a real redis-server started on a free loopback port."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from gateway.config import CacheSettings
from gateway.doku.simulator import DokuSimulator, inquiry_body
from gateway.metrics import Metrics
from gateway.snap.models import Bill, BillStatus, FreeText
from gateway.state.base import Claim, StoredAnswer
from gateway.state.codec import decode_outcome, encode_outcome
from gateway.state.redis import RedisState
from gateway.web.app import create_app

from ..support import Keys, RedisServer, free_port, make_settings, poll, running_server

pytestmark = pytest.mark.anyio

FP1, FP2 = "a" * 64, "b" * 64


@pytest.fixture
async def state(redis_server: RedisServer) -> AsyncIterator[RedisState]:
    backend = RedisState.from_settings(CacheSettings(url=redis_server.url), Metrics())
    yield backend
    await backend.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def kept_outcome(client: aioredis.Redis, external_id: str) -> bytes:
    """The replay record kept for ``external_id``, polled for until it is there."""
    deadline = time.monotonic() + 10.0
    while True:
        async for key in client.scan_iter(match=f"doku-gateway:v1:r:*{external_id}"):
            stored = await client.get(key)
            if isinstance(stored, bytes) and stored[:1] == b"H":
                return stored
        assert time.monotonic() < deadline, f"no outcome kept for {external_id}"
        await asyncio.sleep(0.01)


async def commands(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}


def test_codec_round_trip() -> None:
    bill = Bill(
        name="Budi",
        amount=Decimal("150000.00"),
        trx_type="V",
        min_amount=Decimal("1.00"),
        max_amount=Decimal("9.99"),
        expires_at=datetime(2026, 1, 1, 9, tzinfo=UTC),
        trx_id="INV",
        email="a@b.c",
        phone="628123456789",
        free_text=(FreeText("a", "b"),),
        reusable=True,
        cache_ttl=5.0,
    )
    assert decode_outcome(encode_outcome(bill)) == bill
    for status in BillStatus:
        assert decode_outcome(encode_outcome(status)) is status
    with pytest.raises(ValueError):
        decode_outcome(b'{"n": "x"}')


async def test_claim_replay_conflict_release(state: RedisState) -> None:
    assert (await state.begin("k", FP1, 60, None)).claim is Claim.NEW
    assert (await state.begin("k", FP1, 60, None)).claim is Claim.PENDING
    assert (await state.begin("k", FP2, 60, None)).claim is Claim.CONFLICT
    await state.finish("k", FP1, StoredAnswer(200, b'{"ok":1}'), 60)
    assert await state.wait("k", 2) == StoredAnswer(200, b'{"ok":1}')
    replay = await state.begin("k", FP1, 60, None)
    assert (replay.claim, replay.answer) == (Claim.REPLAY, StoredAnswer(200, b'{"ok":1}'))
    await state.release("k")
    assert (await state.begin("k", FP2, 60, None)).claim is Claim.NEW


async def test_cache_hit_is_one_round_trip(state: RedisState, raw: aioredis.Redis) -> None:
    bill = Bill(name="Budi", amount=Decimal("1.00"))
    await state.put("8889900001234", bill, 30)
    await state.begin("warm", FP1, 60, "8889900001234")  # loads the script
    before = await commands(raw)
    begin = await state.begin("k2", FP1, 60, "8889900001234")
    after = await commands(raw)
    assert begin.claim is Claim.NEW and begin.cached == bill
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta.pop("info", None)
    # One EVALSHA; the GETs and the SET are the script's own, counted inside Redis.
    assert {k: v for k, v in delta.items() if v} == {"evalsha": 1, "get": 2, "set": 1}


async def test_ttls(state: RedisState, raw: aioredis.Redis) -> None:
    await state.put("123", BillStatus.NOT_FOUND, 5)
    ttl = await raw.pttl("doku-gateway:v1:{123}:a")
    assert 4000 < ttl <= 5000
    await state.begin("day-key", FP1, 7200.5, None)
    assert 7100_000 < await raw.pttl("doku-gateway:v1:r:day-key") <= 7200_500
    await state.put("124", Bill(name="A", amount=Decimal("1.00")), 0)
    assert await raw.exists("doku-gateway:v1:{124}:a") == 0


async def test_cached_answer_never_outlives_the_bill(
    keys: Keys, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    from gateway.state.ttl import ttl_for

    soon = datetime.now(UTC) + timedelta(seconds=3)
    bill = Bill(name="A", amount=Decimal("1.00"), expires_at=soon, cache_ttl=60)
    assert ttl_for(bill, CacheSettings(bill_ttl=60)) <= 3


async def test_versioned_prefix_and_compact_values(state: RedisState, raw: aioredis.Redis) -> None:
    await state.put("555", Bill(name="Budi", amount=Decimal("10.00")), 30)
    value = await raw.get("doku-gateway:v1:{555}:a")
    assert value == b'{"n":"Budi","a":"10.00","t":"C"}'
    await raw.set("doku-gateway:v1:{556}:a", b"\x80garbage")
    assert await state.get("556") is None


async def test_lock_and_await_answer(state: RedisState, redis_server: RedisServer) -> None:
    other = RedisState.from_settings(CacheSettings(url=redis_server.url), Metrics())
    try:
        assert await state.acquire("777", 5)
        assert not await other.acquire("777", 5)
        waiter = asyncio.create_task(other.await_answer("777", 5))
        await state.put("777", BillStatus.EXPIRED, 30)
        assert await waiter is BillStatus.EXPIRED
        await state.unlock("777")
        assert await other.acquire("777", 5)
        waiter = asyncio.create_task(state.await_answer("777", 5))
        await other.unlock("777")  # gone without a new answer: the cached one is returned
        assert await waiter is BillStatus.EXPIRED
    finally:
        await other.close()


async def test_bounded_pool_survives_256_concurrent_requests(redis_server: RedisServer) -> None:
    settings = CacheSettings(url=redis_server.url, redis_max_connections=4)
    backend = RedisState.from_settings(settings, Metrics())
    try:
        results = await asyncio.gather(*(backend.begin(f"c{i}", FP1, 60, "x") for i in range(256)))
        assert all(r.claim is Claim.NEW for r in results)
        assert backend.status()["ok"] is True
    finally:
        await backend.close()


async def test_redis_down_falls_back_then_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    settings = CacheSettings(url=redis_server.url, redis_retry_interval=0.05)
    backend = RedisState.from_settings(settings, metrics)
    try:
        await backend.put("1", BillStatus.NOT_FOUND, 30)
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="doku_gateway.redis"):
            for index in range(5):
                assert (await backend.begin(f"k{index}", FP1, 60, "1")).claim is Claim.NEW
            await backend.put("2", BillStatus.EXPIRED, 30)
            assert await backend.get("2") is BillStatus.EXPIRED  # from memory meanwhile
        assert backend.status() == {"backend": "redis", "ok": False, "degraded": True}
        assert metrics.redis_up._value.get() == 0
        assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1
        redis_server.restart()

        async def recovered() -> bool:
            await backend.put("3", BillStatus.ALREADY_PAID, 30)
            return bool(backend.status()["ok"])

        deadline = asyncio.get_running_loop().time() + 10
        while not await recovered():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        assert metrics.redis_up._value.get() == 1
        probe = aioredis.Redis.from_url(redis_server.url)
        assert await probe.exists("doku-gateway:v1:{3}:a") == 1
        await probe.aclose()
    finally:
        await backend.close()


async def test_gateway_keeps_answering_while_redis_is_down(
    keys: Keys, redis_server: RedisServer
) -> None:
    settings = make_settings(keys, cache={"url": redis_server.url, "redis_retry_interval": 0.05})
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)

            async def inquire(code: str) -> httpx.Response:
                request = simulator.inquiry_request(token, inquiry_body(code, "   88899"))
                return await simulator.send(http, request)

            assert (await inquire("8889900001234")).status_code == 200
            redis_server.stop()
            for code in ("8889900001234", "8889900005678", "8889911700001"):
                assert (await inquire(code)).status_code in (200, 404)
            readyz = await http.get("/readyz")
            ready = readyz.json()
            # Still in the Service: inquiries are answered from memory; notifications are not
            # (the Redis journal is down), and the body says so.
            assert readyz.status_code == 200 and ready["status"] == "degraded"
            assert ready["inquiries"] is True and ready["payments"] is False
            assert ready["state"]["degraded"] is True
            assert "doku_gateway_redis_up 0.0" in (await http.get("/metrics")).text
            redis_server.restart()
            probe = aioredis.Redis.from_url(redis_server.url)

            async def cached_again() -> bool:
                await inquire("8889900009999")
                return bool(await probe.exists("doku-gateway:v1:{8889900009999}:a"))

            deadline = asyncio.get_running_loop().time() + 10
            while not await cached_again():
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            await probe.aclose()


async def test_cache_purge_command(redis_server: RedisServer, raw: aioredis.Redis) -> None:
    await raw.set("doku-gateway:v1:{8889900001234}:a", b'{"s":"expired"}')
    result = subprocess.run(  # noqa: ASYNC221 (a CLI process, on purpose)
        [
            sys.executable,
            "-m",
            "gateway",
            "cache",
            "purge",
            "--redis-url",
            redis_server.url,
            "   8889900001234",
            "8889900000000",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert b"purged 1 cached answer(s) of 2" in result.stdout
    assert await raw.exists("doku-gateway:v1:{8889900001234}:a") == 0


def test_cache_purge_needs_redis() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "cache", "purge", "1"],
        capture_output=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert b"needs a Redis URL" in result.stderr


def test_sentinel_url(tmp_path: Path) -> None:
    """A master and a sentinel started here; the gateway finds the master through it."""
    from ..support import start_redis

    master = start_redis()
    sentinel_port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor gw 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds gw 1000\n"
    )
    process = subprocess.Popen(
        ["redis-server", str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sentinel = RedisServer(sentinel_port, process, tmp_path)
    try:
        poll(sentinel.ping)

        async def scenario() -> None:
            settings = CacheSettings(url=f"redis+sentinel://127.0.0.1:{sentinel_port}/gw/0")
            backend = RedisState.from_settings(settings, Metrics())
            try:
                await backend.put("42", BillStatus.ALREADY_PAID, 30)
                assert await backend.get("42") is BillStatus.ALREADY_PAID
                begin = await backend.begin("s", FP1, 60, "42")
                assert begin.claim is Claim.NEW and begin.cached is BillStatus.ALREADY_PAID
                assert backend.status()["ok"] is True
            finally:
                await backend.close()
            direct = aioredis.Redis.from_url(master.url)
            assert await direct.exists("doku-gateway:v1:{42}:a") == 1
            await direct.aclose()

        asyncio.run(scenario())
    finally:
        sentinel.stop()
        master.stop()


def test_bad_sentinel_url() -> None:
    from gateway.exceptions import ConfigError

    with pytest.raises(ConfigError, match="master set"):
        RedisState.from_settings(CacheSettings(url="redis+sentinel://127.0.0.1:26379"), Metrics())
    assert replace(CacheSettings(), url="x").url == "x"


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(20000, 50000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def test_cluster_url(tmp_path: Path) -> None:
    """Three cluster nodes started here, joined with redis-cli; the gateway talks to them."""
    import shutil

    from ..support import _spawn_redis

    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed")
    nodes = []
    try:
        for index in range(3):
            directory = tmp_path / f"node{index}"
            directory.mkdir()
            port = cluster_port()
            process = _spawn_redis(
                port,
                directory,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(directory / "nodes.conf"),
            )
            node = RedisServer(port, process, directory)
            poll(node.ping)
            nodes.append(node)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )

        def cluster_ok() -> bool:
            info = subprocess.run(
                ["redis-cli", "-p", str(nodes[0].port), "cluster", "info"],
                capture_output=True,
                timeout=10,
                check=False,
            ).stdout
            return b"cluster_state:ok" in info

        poll(cluster_ok, timeout=30)

        async def scenario() -> None:
            url = f"redis+cluster://127.0.0.1:{nodes[0].port}"
            backend = RedisState.from_settings(CacheSettings(url=url), Metrics())
            try:
                await backend.put("8889900001234", BillStatus.EXPIRED, 30)
                begin = await backend.begin("k", FP1, 60, "8889900001234")
                assert begin.claim is Claim.NEW and begin.cached is BillStatus.EXPIRED
                assert (await backend.begin("k", FP2, 60, None)).claim is Claim.CONFLICT
                assert await backend.acquire("8889900001234", 5)
                await backend.unlock("8889900001234")
                assert backend.status()["ok"] is True
            finally:
                await backend.close()

        asyncio.run(scenario())
    finally:
        for node in nodes:
            node.stop()


async def test_identical_retry_of_a_cache_hit_renders_the_kept_outcome(
    keys: Keys, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    # Commands counted, not timed: a batch past the default 0.25 s opens the breaker, and the
    # outcome is then kept in memory (the flaky failure's symptom; not its only cause).
    settings = make_settings(keys, cache={"url": redis_server.url, "redis_command_timeout": 5.0})
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = await simulator.get_token(http)
            body = inquiry_body("8889900001234", "   88899")
            miss = simulator.inquiry_request(token, body, external_id="miss")
            assert (await simulator.send(http, miss)).status_code == 200
            hit = simulator.inquiry_request(token, body, external_id="hit")
            first = await simulator.send(http, hit)
            # Its outcome is kept by a script fired after the answer went out: counted from
            # once it is there (on a slow run it could land inside the window below).
            await kept_outcome(raw, "hit")
            before = await commands(raw)
            again = await simulator.send(http, hit)
            after = await commands(raw)
            other = simulator.inquiry_request(
                token, inquiry_body("8889900005678", "   88899"), external_id="hit"
            )
            conflict = await simulator.send(http, other)
    assert again.content == first.content
    assert conflict.json()["responseCode"] == "4092400"
    keys_found = [k async for k in raw.scan_iter(match="doku-gateway:v1:r:*hit")]
    stored = await raw.get(keys_found[0])
    assert len(keys_found) == 1 and isinstance(stored, bytes) and stored[:1] == b"H"
    # The retry cost one EVALSHA and no separate write of its answer.
    assert after.get("evalsha", 0) - before.get("evalsha", 0) == 1
    assert after.get("set", 0) == before.get("set", 0)
