"""SIGTERM on a real ``serve`` process: /readyz turns 503 at once, the request in flight gets
its answer, then the process exits."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from gateway.cli._serve import collect_young_periodically
from gateway.doku.simulator import DokuSimulator, inquiry_body

from ..support import Keys, free_port, poll, write_config


async def _until(check: Callable[[], Awaitable[bool]], deadline: float) -> None:
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


def test_sigterm_drains_then_exits(tmp_path: Path, keys: Keys) -> None:
    calls = tmp_path / "calls.log"
    resolvers = (
        '[[resolvers]]\nuse = "tests.sample_resolvers:CountingResolver"\n'
        f'options = {{ log = "{calls}", delay = 1.5 }}\n'
    )
    config = write_config(tmp_path, keys, "[http]\nshutdown_delay = 0.5", resolvers=resolvers)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # In the test's own directory: the journal's relative default lands there, not in the
        # checkout.
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    base = f"http://127.0.0.1:{port}"
    simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)

    def up() -> bool:
        try:
            return httpx.get(f"{base}/readyz").status_code == 200
        except httpx.TransportError:
            assert process.poll() is None
            return False

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            token = await simulator.get_token(client)
            request = simulator.inquiry_request(token, inquiry_body("8889900001234", "88899"))
            inflight = asyncio.create_task(simulator.send(client, request))

            async def resolving() -> bool:
                return await asyncio.to_thread(lambda: calls.exists() and calls.stat().st_size > 0)

            await _until(resolving, time.monotonic() + 10)
            process.send_signal(signal.SIGTERM)
            draining: list[httpx.Response] = []

            async def not_ready() -> bool:
                draining.append(await client.get("/readyz"))
                return draining[-1].status_code == 503

            await _until(not_ready, time.monotonic() + 5)
            return draining[-1], await inflight

    try:
        poll(up, timeout=30)
        readyz, answer = asyncio.run(scenario())
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
    assert readyz.json()["status"] == "draining"
    assert answer.status_code == 200
    assert answer.json()["responseCode"] == "2002400"
    assert process.returncode in (0, -signal.SIGTERM)


def test_the_interpreter_is_tuned_once_the_app_is_up() -> None:
    """A larger young generation, the other thresholds kept; a shorter switch interval. In a
    child interpreter: the test process's own settings are left as they are."""
    script = (
        "import gc, sys\n"
        "from gateway.cli._serve import GC_YOUNG_THRESHOLD, SWITCH_INTERVAL, tune_interpreter\n"
        "before = gc.get_threshold()\n"
        "interval = sys.getswitchinterval()\n"
        "tune_interpreter()\n"
        "after = gc.get_threshold()\n"
        "assert after == (GC_YOUNG_THRESHOLD, *before[1:]), (before, after)\n"
        "assert GC_YOUNG_THRESHOLD > before[0]\n"
        "assert abs(sys.getswitchinterval() - SWITCH_INTERVAL) < 1e-6 < interval - 0.001\n"
        "print('tuned')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tuned"


def test_the_young_generation_is_collected_by_the_clock_too() -> None:
    """Tuples from CPython's free list enter the young generation uncounted: without
    collections by the clock they piled up to hundreds of thousands between two counted
    ones. The chain of collections runs as long as the loop does."""
    generations: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            generations.append(info["generation"])

    async def main() -> int:
        collect_young_periodically(asyncio.get_running_loop(), 0.01)
        deadline = time.monotonic() + 10.0
        while generations.count(0) < 3:
            assert time.monotonic() < deadline, "no young collections by the clock"
            await asyncio.sleep(0.01)
        return generations.count(0)

    gc.callbacks.append(seen)
    threshold = gc.get_threshold()
    gc.set_threshold(10**9, *threshold[1:])  # no collection by the allocation count
    try:
        assert asyncio.run(main()) >= 3
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(seen)
