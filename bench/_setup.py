"""Which servers a run needs, starting them, and checking that each answers every mode right."""

from __future__ import annotations

import argparse
import itertools
import shutil
from pathlib import Path

import httpx
from _proc import HOST, BenchError, Children, log_tail, redis_call
from _report import Series
from _signing import (
    Credentials,
    check_answer,
    fetch_token,
    fresh_request,
    peer_bill,
    signed_inquiry,
)
from _targets import (
    GATEWAY_BIN,
    PEER_PYTHON,
    PROJECT_PYTHON,
    SHARED,
    Target,
    gateway_target,
    start_target,
    uvicorn_target,
    wait_ready,
)

from gateway.config import PathSettings
from gateway.resolvers.demo import DemoFiles

INQUIRY_MODES = ("hit", "miss")


def needs(args: argparse.Namespace) -> tuple[bool, bool]:
    """Whether the run needs the volatile Redis (state of gateway-redis, the peer's bills) and
    the durable one (the Redis payment journal, appendfsync always)."""
    inquiries = any(mode in args.mode_list for mode in INQUIRY_MODES)
    redis_gateway = "gateway" in args.target_list and "redis" in args.backend_list
    volatile = inquiries and ("peer" in args.target_list or redis_gateway)
    durable = "payment" in args.mode_list and redis_gateway
    return volatile, durable


def preflight(args: argparse.Namespace, needs_redis: bool) -> tuple[str, str | None]:
    missing = []
    wrk = shutil.which("wrk")
    if wrk is None:
        missing.append("wrk")
    redis_server = shutil.which("redis-server") if needs_redis else None
    if needs_redis and redis_server is None:
        missing.append("redis-server")
    if not GATEWAY_BIN.exists():
        missing.append(str(GATEWAY_BIN))
    if "peer" in args.target_list and not PEER_PYTHON.exists():
        missing.append(str(PEER_PYTHON))
    for name in ("bare_starlette.py", "peer_fastapi_sdk.py"):
        if not (SHARED / name).exists():
            missing.append(str(SHARED / name))
    if missing:
        raise BenchError(f"missing: {', '.join(missing)} (run bash bench/setup)")
    assert wrk is not None
    return wrk, redis_server


def build_targets(
    args: argparse.Namespace, tmp: Path, files: DemoFiles, ports: dict[str, int]
) -> tuple[dict[str, Target], list[list[Series]]]:
    """The servers (by name; gateway-memory always: it issues the token and gives the answers
    bare sends) and the cells: one list of series per (mode, connections), bare first."""
    volatile = f"redis://{HOST}:{ports['volatile']}/0" if "volatile" in ports else None
    durable = f"redis://{HOST}:{ports['durable']}/0" if "durable" in ports else None
    targets = {"gateway-memory": gateway_target("gateway-memory", tmp, files.directory, None)}

    def target(name: str) -> Target:
        if name not in targets:
            if name == "bare":
                env = {"BARE_RESPONSE_FILE": str(tmp / "answer-inquiry.json")}
                targets[name] = uvicorn_target(name, PROJECT_PYTHON, "bare_starlette:app", tmp, env)
            elif name == "bare-payment":
                env = {
                    "BARE_RESPONSE_FILE": str(tmp / "answer-payment.json"),
                    "BARE_PATH": PathSettings().payment,
                }
                targets[name] = uvicorn_target(name, PROJECT_PYTHON, "bare_starlette:app", tmp, env)
            elif name == "peer":
                env = {
                    "PEER_SECRET": files.client_secret,
                    "PEER_PUBLIC_KEY_FILE": str(files.merchant_public),
                    "PEER_REDIS_URL": volatile or "",
                }
                targets[name] = uvicorn_target(name, PEER_PYTHON, "peer_fastapi_sdk:app", tmp, env)
            else:
                url = durable if name == "gateway-redis-aof" else volatile
                targets[name] = gateway_target(name, tmp, files.directory, url)
        return targets[name]

    cells: list[list[Series]] = []
    for mode in args.mode_list:
        for connections in args.connection_list:
            cell: list[Series] = []
            if "bare" in args.target_list:
                name = "bare-payment" if mode == "payment" else "bare"
                cell.append(Series(mode, connections, "bare", "", target(name)))
            if "gateway" in args.target_list:
                for backend in args.backend_list:
                    name = f"gateway-{backend}"
                    if mode == "payment" and backend == "redis":
                        name = "gateway-redis-aof"
                    cell.append(Series(mode, connections, "gateway", backend, target(name)))
            if "peer" in args.target_list and mode != "payment":
                cell.append(Series(mode, connections, "peer", "", target("peer")))
            cells.append(cell)
    return targets, cells


def check_targets(
    args: argparse.Namespace,
    children: Children,
    client: httpx.Client,
    creds: Credentials,
    targets: dict[str, Target],
    cells: list[list[Series]],
    ports: dict[str, int],
    tmp: Path,
) -> dict[str, bytes]:
    """Start every server and send each one request of each mode it is measured in (this also
    warms caches and connection pools); a server that answers wrongly is marked failed."""
    gateway = targets["gateway-memory"]
    start_target(children, gateway)
    wait_ready(gateway, client)
    if not gateway.usable:
        raise BenchError(f"gateway-memory did not start: {gateway.failure}")
    fetch_token(creds, client, gateway.url)
    numbers = itertools.count(1)
    psid = args.partner_service_id
    hit_request = signed_inquiry(creds, args.payment_code, psid)
    answers = {"hit": check_answer(gateway, client, hit_request, "hit", "inquiry")}
    (tmp / "answer-inquiry.json").write_bytes(answers["hit"])
    if "volatile" in ports:
        key = f"va:{args.payment_code}".encode()
        reply = redis_call(
            ports["volatile"], b"SET", key, peer_bill(answers["hit"], args.payment_code)
        )
        if not reply.startswith(b"+OK"):
            raise BenchError(f"redis SET {key!r} failed: {reply!r}")
    if "payment" in args.mode_list:
        request, _ = fresh_request(creds, "payment", psid, next(numbers))
        answers["payment"] = check_answer(gateway, client, request, "payment", "payment")
        (tmp / "answer-payment.json").write_bytes(answers["payment"])
    answers["miss"] = answers["hit"]

    others = [t for t in targets.values() if t is not gateway]
    for target in others:
        start_target(children, target)
    for target in others:
        wait_ready(target, client)
    checked: set[tuple[str, str]] = set()
    for series in (s for cell in cells for s in cell):
        target, mode = series.target, series.mode
        if (mode, target.name) in checked or not target.usable:
            continue
        checked.add((mode, target.name))
        kind = "payment" if mode == "payment" else "inquiry"
        if mode == "hit":
            request = hit_request
        else:
            request, code = fresh_request(creds, kind, psid, next(numbers))
            if series.role == "peer":
                bill = peer_bill(answers["hit"], code)
                redis_call(ports["volatile"], b"SET", f"va:{code}".encode(), bill)
        try:
            check_answer(target, client, request, mode, kind)
        except BenchError as exc:
            target.failure = f"{exc}\n{log_tail(target.log)}"
    for target in targets.values():
        if target.unavailable:
            print(f"note: {target.name} not available: {target.unavailable}")
        if target.failure:
            print(f"!!! {target.name} FAILED before measuring: {target.failure}")
    return answers
