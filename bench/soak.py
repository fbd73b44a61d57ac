"""Soak: N minutes of real DOKU traffic against one gateway process, watching its memory.

Every VA is inquired once and then paid once (what DOKU sends), by ``--connections`` concurrent
senders, each request signed as DOKU signs it with a fresh X-EXTERNAL-ID. The gateway's resident
memory is sampled every few seconds; after ``--warmup`` the report fits memory against requests
answered and prints the growth per request, for the whole run and for its last third (with the
embedded backend the growth flattens once the replay guard reaches ``--replay-cap`` ids), plus
every error by response code. Exit status 1 when any request failed.

    .venv/bin/python bench/soak.py --minutes 5                    # embedded (memory) backend
    .venv/bin/python bench/soak.py --minutes 5 --backend redis    # a private redis-server

Only 127.0.0.1 is contacted; the gateway and redis-server are ended on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.doku.simulator import DokuSimulator, inquiry_body, payment_body  # noqa: E402
from gateway.snap.keys import load_private_key  # noqa: E402

PARTNER = "   88899"


@dataclass
class Sample:
    at: float
    requests: int
    rss_kib: int


@dataclass
class Soak:
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def gateway(directory: Path, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    log = (directory / "gateway.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--demo",
            "--demo-dir",
            str(directory),
            "--port",
            str(port),
        ],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited; see {directory / 'gateway.log'}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start within 60 s")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


async def drive(url: str, simulator: DokuSimulator, args: argparse.Namespace, pid: int) -> Soak:
    soak = Soak()
    numbers = itertools.count(1)
    end = time.monotonic() + args.minutes * 60
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        token = await simulator.get_token(http)
        token_at = time.monotonic()

        async def sender() -> None:
            nonlocal token, token_at
            while time.monotonic() < end:
                if time.monotonic() - token_at > 600:  # tokens live 15 minutes
                    token, token_at = await simulator.get_token(http), time.monotonic()
                n = next(numbers)
                code = f"88899{n:010d}"
                inquiry = simulator.inquiry_request(token, inquiry_body(code, PARTNER))
                await record(await simulator.send(http, inquiry), "2002400")
                body = payment_body(code, PARTNER, "25000.00", payment_request_id=f"SOAK-{n}")
                await record(
                    await simulator.send(http, simulator.payment_request(token, body)), "2002500"
                )

        async def record(response: httpx.Response, expected: str) -> None:
            soak.requests += 1
            try:
                seen = str(response.json().get("responseCode"))
            except ValueError:
                seen = f"HTTP {response.status_code} (not JSON)"
            if seen != expected:
                soak.errors[seen] += 1

        async def sampler() -> None:
            while time.monotonic() < end:
                soak.samples.append(Sample(time.monotonic(), soak.requests, rss_kib(pid)))
                await asyncio.sleep(args.sample_every)

        await asyncio.gather(sampler(), *(sender() for _ in range(args.connections)))
    soak.samples.append(Sample(time.monotonic(), soak.requests, rss_kib(pid)))
    return soak


def growth(samples: list[Sample]) -> float | None:
    """Least-squares slope of RSS (bytes) over requests answered; None with too few samples."""
    if len(samples) < 3 or samples[-1].requests == samples[0].requests:
        return None
    xs = [s.requests for s in samples]
    ys = [s.rss_kib * 1024 for s in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


def report(soak: Soak, args: argparse.Namespace, started: float) -> dict[str, object]:
    warm = [s for s in soak.samples if s.at - started >= args.warmup]
    last_third = warm[len(warm) * 2 // 3 :]
    whole, tail = growth(warm), growth(last_third)
    return {
        "backend": args.backend,
        "minutes": args.minutes,
        "connections": args.connections,
        "replay_cap": args.replay_cap,
        "cache_cap": args.cache_cap,
        "requests": soak.requests,
        "requests_per_second": round(soak.requests / max(time.monotonic() - started, 1e-9), 1),
        "rss_mib_after_warmup": round(warm[0].rss_kib / 1024, 1) if warm else None,
        "rss_mib_end": round(soak.samples[-1].rss_kib / 1024, 1),
        "growth_bytes_per_request_after_warmup": None if whole is None else round(whole, 2),
        "growth_bytes_per_request_last_third": None if tail is None else round(tail, 2),
        "errors": dict(soak.errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backend", choices=("memory", "redis"), default="memory")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds not fitted (30)")
    parser.add_argument(
        "--replay-cap",
        type=int,
        default=50_000,
        help="cache.replay_max_entries (embedded backend), small so that a short soak reaches it",
    )
    parser.add_argument(
        "--cache-cap",
        type=int,
        default=100_000,
        help="cache.max_entries (answers kept in process), lower to reach it in a short soak",
    )
    parser.add_argument("--sample-every", type=float, default=2.0)
    parser.add_argument("--keep-tmp", action="store_true")
    args = parser.parse_args()
    if not 0 < args.minutes <= 240:
        parser.error("--minutes must be in (0, 240]")
    directory = Path(tempfile.mkdtemp(prefix="doku-gateway-soak-"))
    env = {
        "DOKU_GATEWAY_CACHE_REPLAY_MAX_ENTRIES": str(args.replay_cap),
        "DOKU_GATEWAY_CACHE_MAX_ENTRIES": str(args.cache_cap),
        "DOKU_GATEWAY_LOG_LEVEL": "WARNING",
    }
    try:
        with contextlib.ExitStack() as stack:
            if args.backend == "redis":
                env["DOKU_GATEWAY_CACHE_URL"] = stack.enter_context(redis_server(directory))
            port = free_port()
            process = stack.enter_context(gateway(directory, port, env))
            credentials = json.loads((directory / "credentials.json").read_text())
            simulator = DokuSimulator(
                credentials["client_id"],
                credentials["client_secret"],
                load_private_key((directory / "doku_private.pem").read_bytes()),
            )
            started = time.monotonic()
            soak = asyncio.run(drive(f"http://127.0.0.1:{port}", simulator, args, process.pid))
            result = report(soak, args, started)
    finally:
        if not args.keep_tmp:
            shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
