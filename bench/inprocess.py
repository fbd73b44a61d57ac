"""Per-request cost of the gateway's inquiry path inside one process, without HTTP.

Calls the ASGI app directly with signed requests, N times, and prints microseconds per request,
next to a bare Starlette app doing nothing but read the body and answer. ``--mode hit`` repeats
one VA's inquiry (cache hits), ``miss`` inquires a new VA every time, ``payment`` posts a new
payment notification every time (requests signed before the clock starts). Useful to see what a
change to a hot path costs before running the full wrk benchmark (``bench/run.py``), and to
profile one (``--profile FILE`` writes cProfile stats of the gateway's loop).

Run:  .venv/bin/python bench/inprocess.py [--mode hit|miss|payment] [--requests 20000]
      [--backend memory|redis://...] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import secrets
import tempfile
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.doku.simulator import DokuSimulator, SignedRequest, inquiry_body, payment_body
from gateway.resolvers.demo import demo_settings, ensure_demo_files
from gateway.snap.keys import load_private_key
from gateway.web.app import create_app


def bare_app(answer: bytes) -> Any:
    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    return Starlette(routes=[Route("/v1.1/transfer-va/inquiry", endpoint, methods=["POST"])])


async def call(app: Any, request: SignedRequest, external_id: str) -> tuple[int, bytes]:
    headers = [
        (k.lower().encode(), v.encode())
        for k, v in request.headers.items()
        if k.lower() != "x-external-id"
    ]
    headers.append((b"x-external-id", external_id.encode()))
    headers.append((b"content-length", str(len(request.body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def measure(
    app: Any, requests: list[SignedRequest], count: int, concurrency: int = 1
) -> float:
    """Microseconds per request, ``concurrency`` callers at a time (like wrk's connections)."""
    prefix = secrets.token_hex(4)  # X-EXTERNAL-IDs never repeat across runs: no replays
    indexes = iter(range(count))

    async def caller() -> None:
        for index in indexes:
            await call(app, requests[index % len(requests)], f"{prefix}-{index}")

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return (time.perf_counter() - started) / count * 1e6


def signed(
    simulator: DokuSimulator, token: str, mode: str, count: int, run: int
) -> list[SignedRequest]:
    if mode == "hit":
        return [simulator.inquiry_request(token, inquiry_body("8889900001234", "   88899"))]
    requests = []
    for index in range(count):
        code = f"88899{run}{index:09d}"
        if mode == "miss":
            requests.append(simulator.inquiry_request(token, inquiry_body(code, "   88899")))
        else:
            document = payment_body(
                code, "   88899", "25000.00", payment_request_id=f"P{run}-{index}"
            )
            requests.append(simulator.payment_request(token, document))
    return requests


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--backend", default="memory://")
    parser.add_argument("--mode", choices=("hit", "miss", "payment"), default="hit")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (default 1)"
    )
    parser.add_argument("--profile", help="write cProfile stats of the measured gateway run here")
    args = parser.parse_args()
    directory = tempfile.mkdtemp()
    files = ensure_demo_files(directory)
    settings = demo_settings(files, {"DOKU_GATEWAY_CACHE_URL": args.backend})
    app = create_app(settings)
    simulator = DokuSimulator(
        files.client_id, files.client_secret, load_private_key(files.doku_private.read_bytes())
    )
    async with app.fallback.router.lifespan_context(app.fallback):
        token_request = simulator.token_request()
        status, body = await call(app, token_request, "token")
        import json

        token = json.loads(body)["accessToken"]
        request = simulator.inquiry_request(token, inquiry_body("8889900001234", "   88899"))
        status, answer = await call(app, request, secrets.token_hex(8))
        assert status == 200, answer
        await measure(app, signed(simulator, token, args.mode, 500, 1), 500)
        requests = signed(simulator, token, args.mode, args.requests, 2)
        status, first = await call(app, requests[0], secrets.token_hex(8))
        assert status == 200, first
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        rest = requests[1:] or requests  # hit: the one request again
        gateway_us = await measure(app, rest, args.requests - 1, args.concurrency)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    bare = bare_app(answer)
    await measure(bare, requests, 500)
    bare_us = await measure(bare, requests, args.requests, args.concurrency)
    print(
        f"{args.mode}: gateway {gateway_us:7.1f} us/request   "
        f"bare starlette {bare_us:7.1f} us/request   "
        f"gateway work beyond bare: {gateway_us - bare_us:6.1f} us"
    )


if __name__ == "__main__":
    asyncio.run(main())
