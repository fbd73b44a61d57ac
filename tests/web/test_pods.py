"""Two real gateway processes sharing one real Redis, as two pods behind DOKU would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.doku.simulator import DokuSimulator, inquiry_body

from ..support import Keys, RedisServer, free_port, poll, write_config

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]


def pod_config(directory: Path, keys: Keys, redis_url: str, log: Path) -> Path:
    resolvers = f"""
[[resolvers]]
name = "counting"
use = "tests.sample_resolvers:PaymentCountingResolver"
options = {{ log = "{log}", delay = 0.3, payments = "{log}.payments" }}
"""
    return write_config(
        directory,
        keys,
        f'[cache]\nurl = "{redis_url}"\n',
        client_secret="env:TEST_CLIENT_SECRET",
        resolvers=resolvers,
    )


@pytest.fixture
def pods(tmp_path: Path, keys: Keys, redis_server: RedisServer) -> Iterator[tuple[list[str], Path]]:
    log = tmp_path / "calls.log"
    config = pod_config(tmp_path, keys, redis_server.url, log)
    env = {**os.environ, "TEST_CLIENT_SECRET": keys.client_secret, "PYTHONPATH": str(ROOT)}
    processes, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gateway",
                        "serve",
                        "--config",
                        str(config),
                        "--port",
                        str(port),
                    ],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):

            def up(url: str = url, process: subprocess.Popen[bytes] = process) -> bool:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                try:
                    return httpx.get(url + "/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            poll(up, timeout=30)
        yield urls, log
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.communicate(timeout=30)


async def test_replay_is_refused_on_the_other_pod(pods: tuple[list[str], Path], keys: Keys) -> None:
    (first, second), _ = pods
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    async with httpx.AsyncClient(base_url=first) as a, httpx.AsyncClient(base_url=second) as b:
        token = await simulator.get_token(a)
        request = simulator.inquiry_request(
            token, inquiry_body("8889900001234", "   88899"), external_id="pod-ext-1"
        )
        original = await simulator.send(a, request)
        retry = await simulator.send(b, request)
        other = simulator.inquiry_request(
            token, inquiry_body("8889900005678", "   88899"), external_id="pod-ext-1"
        )
        conflict = await simulator.send(b, other)
    assert original.status_code == 200
    assert retry.content == original.content  # the first answer, from the other pod
    assert conflict.status_code == 409
    assert conflict.json()["responseCode"] == "4092400"


async def test_fifty_concurrent_misses_make_one_resolver_call(
    pods: tuple[list[str], Path], keys: Keys
) -> None:
    urls, log = pods
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    clients = [httpx.AsyncClient(base_url=url, timeout=10) for url in urls]
    try:
        token = await simulator.get_token(clients[0])
        responses = await asyncio.gather(
            *(
                simulator.send(
                    clients[i % 2],
                    simulator.inquiry_request(token, inquiry_body("8889900042424", "   88899")),
                )
                for i in range(50)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    assert [r.status_code for r in responses] == [200] * 50
    assert {r.json()["virtualAccountData"]["additionalInfo"]["trxId"] for r in responses} == {
        "INV-8889900042424"
    }
    calls = log.read_text().splitlines()
    assert len(calls) == 1, calls


async def test_duplicate_notifications_across_pods_make_one_entry_and_one_delivery(
    pods: tuple[list[str], Path], keys: Keys, redis_server: RedisServer
) -> None:
    import redis.asyncio as aioredis

    from gateway.doku.simulator import payment_body

    urls, log = pods
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
    clients = [httpx.AsyncClient(base_url=url, timeout=10) for url in urls]
    document = payment_body("8889900051515", "   88899", "12345.00", payment_request_id="PR-PODS")
    try:
        token = await simulator.get_token(clients[0])
        responses = await asyncio.gather(
            *(
                simulator.send(clients[i % 2], simulator.payment_request(token, document))
                for i in range(6)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    assert {r.json()["responseCode"] for r in responses} == {"2002500"}
    assert len({r.content for r in responses}) == 1
    deliveries = Path(f"{log}.payments")
    poll(lambda: deliveries.exists() and len(deliveries.read_text().splitlines()) >= 1)
    probe = aioredis.Redis.from_url(redis_server.url)
    try:
        lengths = [await probe.xlen(f"doku-gateway:v1:{{pay}}:s:{n}") for n in range(4)]
        assert sum(lengths) == 1
        assert await probe.exists("doku-gateway:v1:{pay}:done:PR-PODS") == 1
    finally:
        await probe.aclose()
    assert len((await asyncio.to_thread(deliveries.read_text)).splitlines()) == 1
