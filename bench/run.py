"""Side-by-side benchmark of doku-gateway's inquiry cache-hit path.

Starts a private redis-server, the gateway (memory and, if it has one, Redis state backend), the
bare Starlette ceiling and the FastAPI + DOKU-SDK peer from ../shared/bench, each as its own
one-worker uvicorn process on a free loopback port, then drives each with wrk in interleaved
rounds and reports medians and the ratios the product is held to. See bench/README.md.

Run:  .venv/bin/python bench/run.py [--duration 10] [--connections 64]
                                    [--backends memory,redis] [--targets bare,gateway,peer]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from gateway.doku.simulator import DokuSimulator, SignedRequest, inquiry_body
from gateway.resolvers.demo import DemoFiles, ensure_demo_files
from gateway.snap.keys import load_private_key

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SHARED = Path(os.environ.get("DOKU_BENCH_SHARED", ROOT.parent / "shared" / "bench")).resolve()
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
GATEWAY_BIN = ROOT / ".venv" / "bin" / "doku-gateway"
PEER_PYTHON = BENCH / ".venv-peer" / "bin" / "python"
RESULTS = BENCH / "results"

HOST = "127.0.0.1"
INQUIRY_PATH = "/v1.1/transfer-va/inquiry"
UVICORN_FLAGS = ("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--workers", "1")
READY_TIMEOUT = 30.0
MAX_DURATION = 240  # X-TIMESTAMP must stay within 300 s of now for a whole wrk run
TOKEN_REFRESH_AFTER = 300.0

#: The figures the product is held to (ratios measured side by side in one run).
TARGET_GATEWAY_OVER_BARE = {"memory": 0.50, "redis": 0.35}
TARGET_GATEWAY_OVER_PEER = 4.0
TARGET_P99_OVER_BARE = 4.0
P99_TARGET_CONNECTIONS = 64
NOISY_SPREAD = 0.20  # warn when a target's req/s varies more than this across rounds

ALL_TARGETS = ("bare", "gateway", "peer")
ALL_BACKENDS = ("memory", "redis")


class BenchError(Exception):
    """A problem that ends the run (the message says what and where)."""


# --------------------------------------------------------------------------------------------
# Child processes: started in their own session, killed by pid on any exit of this process.
# --------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it should this harness die without cleaning up."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


class Children:
    """Every process the harness started, so that all of them are ended on exit."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[IO[bytes]] = []

    def spawn(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path
    ) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        self._logs.append(handle)
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the harness only; it ends them in order
            # preexec_fn is unsafe only with threads; this harness has none.
            preexec_fn=_die_with_parent,
        )
        self._procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        """Servers first, then what they use (Redis), so none logs a lost backend on the way."""
        servers = [proc for name, proc in self._procs if name != "redis"]
        backends = [proc for name, proc in self._procs if name == "redis"]
        for group in (servers, backends):
            for proc in group:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
            deadline = time.monotonic() + 5.0
            for proc in group:
                try:
                    proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(timeout=5.0)
        self._procs.clear()
        for handle in self._logs:
            handle.close()
        self._logs.clear()


def _raise_on_term(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def poll(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Wait until ``check()`` is true; ``BenchError`` after ``timeout`` (no blind sleeps)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not ready within {timeout:.0f}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def log_problems(path: Path) -> dict[str, Any]:
    """Warnings, errors and tracebacks a server logged (costly on a hot path, and a sign)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    counts: dict[str, int] = {}
    tracebacks = 0
    for line in text.splitlines():
        if line.startswith("Traceback"):
            tracebacks += 1
        for level in ("WARNING", "ERROR", "CRITICAL"):
            marker = f" {level} "
            if marker in line:
                message = level + " " + line.split(marker, 1)[1][:100]
                counts[message] = counts.get(message, 0) + 1
    top = sorted(counts.items(), key=lambda item: -item[1])[:3]
    return {"lines": sum(counts.values()), "tracebacks": tracebacks, "top": dict(top)}


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Redis (raw RESP over a socket: PING and SET are all the harness needs)
# --------------------------------------------------------------------------------------------


def _resp_command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def redis_call(port: int, *parts: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=1.0) as sock:
        sock.sendall(_resp_command(*parts))
        return sock.recv(256)


def redis_ping(port: int) -> bool:
    try:
        return redis_call(port, b"PING").startswith(b"+PONG")
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str  # bare, gateway-memory, gateway-redis, peer
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    ready_path: str  # GET this; any HTTP answer (or 200 for the gateway) means ready
    measured: bool = True
    proc: subprocess.Popen[bytes] | None = None
    unavailable: str | None = None  # the target cannot run in this version (not a failure)
    failure: str | None = None  # the target should have run but did not, or answered wrongly
    answer_bytes: int | None = None
    stack: dict[str, bool] = field(default_factory=dict)  # uvloop/httptools loaded?
    log_problems: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def usable(self) -> bool:
        return self.unavailable is None and self.failure is None


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOKU_GATEWAY_", "PEER_"))}
    env.pop("BARE_RESPONSE_FILE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def uvicorn_argv(python: Path, app: str, port: int) -> list[str]:
    return [
        str(python),
        "-m",
        "uvicorn",
        *UVICORN_FLAGS,
        "--host",
        HOST,
        "--port",
        str(port),
        "--app-dir",
        str(SHARED),
        app,
    ]


def gateway_target(name: str, tmp: Path, demo_dir: Path, redis_url: str | None) -> Target:
    port = free_port()
    env = _base_env()
    if redis_url is not None:
        env["DOKU_GATEWAY_CACHE_URL"] = redis_url
    argv = [
        str(GATEWAY_BIN),
        "serve",
        "--demo",
        "--demo-dir",
        str(demo_dir),
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    return Target(name, argv, env, port, tmp / f"{name}.log", "/livez")


def start_target(children: Children, target: Target) -> None:
    target.proc = children.spawn(target.name, target.argv, target.env, target.log, ROOT)


def loaded_stack(pid: int) -> dict[str, bool]:
    """Whether uvloop and httptools are loaded in ``pid``: the gateway's ``serve`` picks them
    through uvicorn's ``auto`` settings, the references through explicit flags."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    return {
        "uvloop": "/uvloop/loop." in maps,
        "httptools": "/httptools/parser/parser." in maps,
    }


def wait_ready(target: Target, client: httpx.Client) -> None:
    """Poll until the target answers HTTP; mark it unavailable/failed if its process exits."""
    assert target.proc is not None

    def ready() -> bool:
        assert target.proc is not None
        if target.proc.poll() is not None:
            return True
        try:
            response = client.get(target.url + target.ready_path, timeout=1.0)
        except httpx.HTTPError:
            return False
        return target.name != "gateway-memory" or response.status_code == 200

    try:
        poll(ready, READY_TIMEOUT, target.name)
    except BenchError as exc:
        target.failure = f"{exc}\n{log_tail(target.log)}"
        return
    code = target.proc.poll()
    if code is None:
        target.stack = loaded_stack(target.proc.pid)
        if not all(target.stack.values()):
            print(f"warning: {target.name} is not running on uvloop + httptools: {target.stack}")
        return
    text = target.log.read_text(encoding="utf-8", errors="replace")
    if target.name == "gateway-redis" and "cache.url" in text and "configuration error" in text:
        reason = next((ln for ln in text.splitlines() if "configuration error" in ln), text)
        target.unavailable = f"the gateway refuses a Redis cache.url ({reason.strip()})"
    else:
        target.failure = f"exited with status {code} before it was ready\n{log_tail(target.log)}"


# --------------------------------------------------------------------------------------------
# Requests as DOKU sends them
# --------------------------------------------------------------------------------------------


@dataclass
class Credentials:
    simulator: DokuSimulator
    files: DemoFiles
    token: str = ""
    token_at: float = 0.0


def fetch_token(creds: Credentials, client: httpx.Client, gateway_url: str) -> None:
    request = creds.simulator.token_request()
    response = client.post(
        gateway_url + request.path, headers=request.headers, content=request.body, timeout=10.0
    )
    document = response.json()
    if response.status_code != 200 or document.get("responseCode") != "2007300":
        raise BenchError(f"token refused by the gateway: {response.status_code} {document}")
    creds.token = str(document["accessToken"])
    creds.token_at = time.monotonic()


def signed_inquiry(creds: Credentials, payment_code: str, partner_service_id: str) -> SignedRequest:
    document = inquiry_body(payment_code, partner_service_id)
    return creds.simulator.inquiry_request(creds.token, document)


def check_answer(target: Target, client: httpx.Client, request: SignedRequest) -> bytes:
    """One request (which also warms the target's cache); its 2002400 answer, or a failure."""
    headers = dict(request.headers)
    headers["X-EXTERNAL-ID"] = "warm" + secrets.token_hex(8)
    try:
        response = client.post(
            target.url + request.path, headers=headers, content=request.body, timeout=10.0
        )
    except httpx.HTTPError as exc:
        raise BenchError(f"{target.name}: warm-up request failed: {exc!r}") from None
    body = response.content
    code = ""
    with contextlib.suppress(ValueError, AttributeError):
        code = str(response.json().get("responseCode"))
    if response.status_code != 200 or code != "2002400":
        raise BenchError(
            f"{target.name}: warm-up answered {response.status_code} {code or '?'}: {body[:300]!r}"
        )
    target.answer_bytes = len(body)
    return body


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------


def lua_string(data: bytes) -> str:
    """A Lua string literal holding exactly ``data``."""
    out = ['"']
    for byte in data:
        char = chr(byte)
        if 32 <= byte < 127 and char not in '"\\':
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    out.append('"')
    return "".join(out)


LUA_TEMPLATE = """-- generated by bench/run.py: one signed inquiry, unique X-EXTERNAL-IDs
local head = {head}
local tail = {tail}
local run_id = {run_id}
local threads = {{}}
local thread_count = 0

non2xx = 0
first_status = 0
counter = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_no", thread_count)
  table.insert(threads, thread)
end

function init(args)
  id_prefix = run_id .. string.format("%02d", thread_no)
end

function request()
  counter = counter + 1
  return head .. id_prefix .. string.format("%d", counter) .. tail
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_status == 0 then first_status = status end
  end
end

function done(summary, latency, requests)
  local bad, first = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
    local status = thread:get("first_status")
    if first == 0 and status ~= 0 then first = status end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT {{\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d,"
    .. "\\"non2xx\\":%d,\\"first_non2xx_status\\":%d,"
    .. "\\"errors\\":{{\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,"
    .. "\\"timeout\\":%d}},"
    .. "\\"latency_us\\":{{\\"p50\\":%d,\\"p90\\":%d,\\"p99\\":%d,"
    .. "\\"max\\":%d,\\"mean\\":%.1f}}}}\\n",
    summary.requests, summary.duration, summary.bytes, bad, first,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def lua_script(request: SignedRequest, port: int, run_id: str) -> str:
    lines = [f"POST {request.path} HTTP/1.1", f"Host: {HOST}:{port}"]
    for name, value in request.headers.items():
        if name.lower() not in ("x-external-id", "content-length", "host"):
            lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(request.body)}")
    head = ("\r\n".join(lines) + "\r\nX-EXTERNAL-ID: ").encode("utf-8")
    tail = b"\r\n\r\n" + request.body
    return LUA_TEMPLATE.format(
        head=lua_string(head), tail=lua_string(tail), run_id=lua_string(run_id.encode())
    )


def run_wrk(
    wrk: str, target: Target, script: Path, args: argparse.Namespace, duration: int
) -> dict[str, Any]:
    argv = [
        wrk,
        "-t",
        str(args.threads),
        "-c",
        str(args.connections),
        "-d",
        f"{duration}s",
        "--timeout",
        f"{args.wrk_timeout}s",
        "-s",
        str(script),
        target.url + INQUIRY_PATH,
    ]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=duration + 30,
            check=False,
            cwd=script.parent,
            preexec_fn=_die_with_parent,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk against {target.name} did not finish in {duration + 30}s") from None
    out = done.stdout.decode("utf-8", "replace")
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if done.returncode != 0 or line is None:
        err = done.stderr.decode("utf-8", "replace")
        raise BenchError(f"wrk against {target.name} failed ({done.returncode}): {out}{err}")
    raw: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
    seconds = raw["duration_us"] / 1e6
    errors = raw["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    return {
        "rps": raw["requests"] / seconds if seconds > 0 else 0.0,
        "p50_ms": raw["latency_us"]["p50"] / 1000,
        "p90_ms": raw["latency_us"]["p90"] / 1000,
        "p99_ms": raw["latency_us"]["p99"] / 1000,
        "max_ms": raw["latency_us"]["max"] / 1000,
        "bytes_per_response": raw["bytes"] / raw["requests"] if raw["requests"] else 0.0,
        "requests": raw["requests"],
        "seconds": seconds,
        "non2xx": raw["non2xx"],
        "first_non2xx_status": raw["first_non2xx_status"] or None,
        "socket_errors": socket_errors,
        "errors": errors,
    }


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    value: float | None
    op: str  # ">=" or "<="
    bound: float
    verdict: str  # PASS, FAIL, N/A, INVALID, INFO
    note: str = ""


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def summarize(target: Target) -> dict[str, Any] | None:
    if not target.runs:
        return None
    return {
        "rps": median_of(target.runs, "rps"),
        "p50_ms": median_of(target.runs, "p50_ms"),
        "p99_ms": median_of(target.runs, "p99_ms"),
        "bytes_per_response": median_of(target.runs, "bytes_per_response"),
        "non2xx": sum(run["non2xx"] for run in target.runs),
        "socket_errors": sum(run["socket_errors"] for run in target.runs),
        "rounds": len(target.runs),
    }


def ratio_check(
    name: str,
    top: Target | None,
    bottom: Target | None,
    key: str,
    op: str,
    bound: float,
    summaries: Mapping[str, dict[str, Any] | None],
    info_only: str = "",
) -> Check | None:
    if top is None or bottom is None:
        return None  # a side was not asked for
    for side in (top, bottom):
        if side.unavailable is not None:
            return Check(name, None, op, bound, "N/A", f"{side.name} not available")
        if side.failure is not None or summaries.get(side.name) is None:
            return Check(name, None, op, bound, "INVALID", f"{side.name} failed")
    a, b = summaries[top.name], summaries[bottom.name]
    assert a is not None and b is not None
    if a["non2xx"] or b["non2xx"] or a["socket_errors"] or b["socket_errors"]:
        verdict_note = "non-2xx or socket errors during the run"
        value = a[key] / b[key] if b[key] else None
        return Check(name, value, op, bound, "INVALID", verdict_note)
    value = a[key] / b[key] if b[key] else None
    if value is None:
        return Check(name, None, op, bound, "INVALID", f"{bottom.name} measured 0")
    ok = value >= bound if op == ">=" else value <= bound
    if info_only:
        return Check(name, value, op, bound, "INFO", info_only)
    return Check(name, value, op, bound, "PASS" if ok else "FAIL")


def scrape_gateway_metrics(client: httpx.Client, target: Target) -> dict[str, float]:
    """Cache hits/misses and rejections from the gateway's /metrics (proves a cache-hit run)."""
    wanted = (
        "doku_gateway_cache_lookups_total",
        "doku_gateway_rejected_requests_total",
        "doku_gateway_replayed_requests_total",
        "doku_gateway_inquiries_total",
    )
    try:
        text = client.get(target.url + "/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(wanted):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                found[name] = float(value)
    return found


def git_state() -> dict[str, Any]:
    def git(*argv: str) -> str:
        try:
            done = subprocess.run(
                ["git", *argv], cwd=ROOT, capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.decode().strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(
    targets: list[Target],
    summaries: Mapping[str, dict[str, Any] | None],
    checks: list[Check],
    command: str,
    gateway_metrics: Mapping[str, Mapping[str, float]],
) -> None:
    print()
    print(
        f"{'target':<16}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'B/resp':>8}"
        f"{'non2xx':>8}{'errors':>8}  rounds (req/s)"
    )
    for target in targets:
        if not target.measured:
            continue
        summary = summaries.get(target.name)
        if target.unavailable is not None:
            print(f"{target.name:<16}  not available: {target.unavailable.splitlines()[0]}")
            continue
        if summary is None:
            reason = (target.failure or "no run").splitlines()[0]
            print(f"{target.name:<16}  FAILED: {reason}")
            continue
        per_round = ", ".join(f"{run['rps']:.0f}" for run in target.runs)
        print(
            f"{target.name:<16}{summary['rps']:>10.0f}{summary['p50_ms']:>9.2f}"
            f"{summary['p99_ms']:>9.2f}{summary['bytes_per_response']:>8.0f}"
            f"{summary['non2xx']:>8d}{summary['socket_errors']:>8d}  {per_round}"
        )
    print()
    print(f"{'check':<34}{'value':>8}  {'target':<9}verdict")
    for check in checks:
        note = f"  ({check.note})" if check.note else ""
        print(
            f"{check.name:<34}{fmt(check.value):>8}  {check.op} {check.bound:<6.2f}"
            f"{check.verdict}{note}"
        )
    for target in targets:
        if len(target.runs) > 1:
            rates = [run["rps"] for run in target.runs]
            spread = (max(rates) - min(rates)) / statistics.median(rates)
            if spread > NOISY_SPREAD:
                print(
                    f"warning: {target.name} req/s varied by {spread:.0%} across rounds "
                    "(noisy machine): rerun or add --rounds"
                )
    for target in targets:
        problems = target.log_problems
        if target.measured and (problems.get("lines") or problems.get("tracebacks")):
            print(
                f"note: {target.name} logged {problems['lines']} warning/error lines and "
                f"{problems['tracebacks']} tracebacks during the run; most frequent:"
            )
            for message, count in problems["top"].items():
                print(f"    {count:>6} x {message}")
    for name, metrics in gateway_metrics.items():
        hits = metrics.get('doku_gateway_cache_lookups_total{result="hit"}', 0.0)
        misses = metrics.get('doku_gateway_cache_lookups_total{result="miss"}', 0.0)
        print(f"\n{name}: cache hits {hits:.0f}, misses {misses:.0f} (from its /metrics)")
    failed = [t for t in targets if t.measured and t.failure is not None]
    for target in failed:
        print(f"\n!!! MEASUREMENT FAILED: {target.name}: {target.failure}", file=sys.stderr)
    print(f"\ncommand: {command}")


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="doku-gateway inquiry cache-hit benchmark, side by side with references"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; figures are medians (3)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="seconds of unrecorded load per target first (1)"
    )
    parser.add_argument("--backends", default="memory,redis", help="gateway state backends")
    parser.add_argument("--targets", default="bare,gateway,peer", help="what to measure")
    parser.add_argument("--payment-code", default="8889900001234", help="demo VA number")
    parser.add_argument("--partner-service-id", default="   88899", help="BIN, space-padded")
    parser.add_argument("--wrk-timeout", type=int, default=5, help="wrk per-request timeout (s)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, keys)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    args.target_list = _split(parser, args.targets, ALL_TARGETS, "--targets")
    args.backend_list = _split(parser, args.backends, ALL_BACKENDS, "--backends")
    if not 1 <= args.duration <= MAX_DURATION:
        parser.error(f"--duration must be 1..{MAX_DURATION} (X-TIMESTAMP skew)")
    if not 1 <= args.threads <= args.connections <= 4096:
        parser.error("need 1 <= --threads <= --connections <= 4096")
    if not 1 <= args.rounds <= 9:
        parser.error("--rounds must be 1..9")
    if not 0 <= args.warmup <= 30:
        parser.error("--warmup must be 0..30")
    return args


def _split(
    parser: argparse.ArgumentParser, value: str, allowed: Sequence[str], flag: str
) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        parser.error(f"{flag}: choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def build_targets(
    args: argparse.Namespace, tmp: Path, files: DemoFiles, redis_port: int | None
) -> list[Target]:
    """In interleaving order; the memory gateway is always built (it issues the token)."""
    redis_url = f"redis://{HOST}:{redis_port}/0" if redis_port else None
    targets: list[Target] = []
    if "bare" in args.target_list:
        port = free_port()
        env = _base_env()
        env["BARE_RESPONSE_FILE"] = str(tmp / "answer.json")
        targets.append(
            Target(
                "bare",
                uvicorn_argv(PROJECT_PYTHON, "bare_starlette:app", port),
                env,
                port,
                tmp / "bare.log",
                "/",
            )
        )
    demo_dir = files.directory
    memory = gateway_target("gateway-memory", tmp, demo_dir, None)
    memory.measured = "gateway" in args.target_list and "memory" in args.backend_list
    targets.append(memory)
    if "gateway" in args.target_list and "redis" in args.backend_list:
        targets.append(gateway_target("gateway-redis", tmp, demo_dir, redis_url))
    if "peer" in args.target_list:
        port = free_port()
        env = _base_env()
        env.update(
            PEER_SECRET=files.client_secret,
            PEER_PUBLIC_KEY_FILE=str(files.merchant_public),
            PEER_REDIS_URL=redis_url or "",
        )
        targets.append(
            Target(
                "peer",
                uvicorn_argv(PEER_PYTHON, "peer_fastapi_sdk:app", port),
                env,
                port,
                tmp / "peer.log",
                "/",
            )
        )
    return targets


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


def store_bill(redis_port: int, payment_code: str, answer: bytes) -> None:
    """The peer's bill, taken from the gateway's own answer so both send the same data."""
    data = json.loads(answer)["virtualAccountData"]
    bill: dict[str, Any] = {
        "virtualAccountName": data["virtualAccountName"],
        "totalAmount": data["totalAmount"],
        "virtualAccountTrxType": data["virtualAccountTrxType"],
        "trxId": data.get("additionalInfo", {}).get("trxId"),
    }
    for key in ("virtualAccountEmail", "virtualAccountPhone"):
        if key in data:
            bill[key] = data[key]
    key = f"va:{payment_code}"
    reply = redis_call(redis_port, b"SET", key.encode(), json.dumps(bill).encode())
    if not reply.startswith(b"+OK"):
        raise BenchError(f"redis SET {key} failed: {reply!r}")


def serpentine(items: list[Target], rounds: int) -> Iterator[tuple[int, Target]]:
    """ABC, CBA, ABC …: a linear drift of the machine weighs on every target alike."""
    for number in range(rounds):
        order = items if number % 2 == 0 else list(reversed(items))
        for item in order:
            yield number + 1, item


def measure(
    args: argparse.Namespace,
    wrk: str,
    tmp: Path,
    targets: list[Target],
    creds: Credentials,
    client: httpx.Client,
    gateway_url: str,
) -> None:
    def one(target: Target, duration: int, label: str) -> dict[str, Any]:
        if time.monotonic() - creds.token_at > TOKEN_REFRESH_AFTER:
            fetch_token(creds, client, gateway_url)
        # Signed right before the run: X-TIMESTAMP stays well inside the 300 s window.
        request = signed_inquiry(creds, args.payment_code, args.partner_service_id)
        run_id = f"{secrets.randbelow(10**10):010d}"
        script = tmp / f"wrk-{target.name}.lua"
        script.write_text(lua_script(request, target.port, run_id), encoding="utf-8")
        result = run_wrk(wrk, target, script, args, duration)
        flag = ""
        if result["non2xx"] or result["socket_errors"]:
            flag = (
                f"  !!! {result['non2xx']} non-2xx (first {result['first_non2xx_status']}), "
                f"{result['socket_errors']} socket errors"
            )
        print(
            f"  {label:<8} {target.name:<16} {result['rps']:>9.0f} req/s  "
            f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms{flag}",
            flush=True,
        )
        return result

    active = [t for t in targets if t.measured and t.usable]
    if args.warmup:
        print(f"warm-up: {args.warmup}s per target (not recorded)", flush=True)
        for target in active:
            one(target, args.warmup, "warm-up")
    print(
        f"measuring: {args.rounds} round(s) x {args.duration}s, {args.connections} connections, "
        f"{args.threads} wrk thread(s)",
        flush=True,
    )
    for number, target in serpentine(active, args.rounds):
        if not target.usable:
            continue
        assert target.proc is not None
        if target.proc.poll() is not None:
            target.failure = (
                f"process exited during the run (status {target.proc.returncode}; a log that "
                f"ends in a clean shutdown means something outside sent it a signal)\n"
                f"{log_tail(target.log, 25)}"
            )
            continue
        result = one(target, args.duration, f"round {number}")
        result["round"] = number
        target.runs.append(result)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv)
    needs_redis = "peer" in args.target_list or (
        "gateway" in args.target_list and "redis" in args.backend_list
    )
    # Ctrl-C raises KeyboardInterrupt even where the caller started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_term)
    signal.signal(signal.SIGHUP, _raise_on_term)
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="doku-bench-"))
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    try:
        wrk, redis_server = preflight(args, needs_redis)
        redis_port: int | None = None
        if needs_redis:
            assert redis_server is not None
            redis_port = free_port()
            redis_dir = tmp / "redis"
            redis_dir.mkdir()
            children.spawn(
                "redis",
                [
                    redis_server,
                    *("--port", str(redis_port), "--bind", HOST),
                    *("--save", "", "--appendonly", "no", "--dir", str(redis_dir)),
                ],
                _base_env(),
                tmp / "redis.log",
                tmp,
            )
            port = redis_port
            poll(lambda: redis_ping(port), READY_TIMEOUT, "redis-server")

        demo_dir = tmp / "demo"
        files = ensure_demo_files(demo_dir)
        simulator = DokuSimulator(
            files.client_id, files.client_secret, load_private_key(files.doku_private.read_bytes())
        )
        creds = Credentials(simulator, files)
        targets = build_targets(args, tmp, files, redis_port)
        by_name = {t.name: t for t in targets}
        gateway = by_name["gateway-memory"]

        with httpx.Client() as client:
            # The memory gateway first: it issues the token and gives the real answer bare sends.
            start_target(children, gateway)
            wait_ready(gateway, client)
            if not gateway.usable:
                raise BenchError(f"gateway-memory did not start: {gateway.failure}")
            fetch_token(creds, client, gateway.url)
            request = signed_inquiry(creds, args.payment_code, args.partner_service_id)
            answer = check_answer(gateway, client, request)
            (tmp / "answer.json").write_bytes(answer)
            if redis_port is not None:
                store_bill(redis_port, args.payment_code, answer)

            others = [t for t in targets if t is not gateway]
            for target in others:
                start_target(children, target)
            for target in others:
                wait_ready(target, client)
            for target in others:
                if target.usable:
                    try:
                        check_answer(target, client, request)
                    except BenchError as exc:
                        target.failure = f"{exc}\n{log_tail(target.log)}"
            for target in targets:
                if target.measured and target.unavailable:
                    print(f"note: {target.name} not available: {target.unavailable}")
                if target.measured and target.failure:
                    print(f"!!! {target.name} FAILED before measuring: {target.failure}")

            measure(args, wrk, tmp, targets, creds, client, gateway.url)
            gateway_metrics = {
                t.name: scrape_gateway_metrics(client, t)
                for t in targets
                if t.name.startswith("gateway") and t.measured and t.usable
            }

        for target in targets:
            target.log_problems = log_problems(target.log)
            if target.measured and target.usable:
                bad = [r for r in target.runs if r["non2xx"] or r["socket_errors"]]
                if bad:
                    target.failure = (
                        f"{sum(r['non2xx'] for r in bad)} non-2xx answers (first status "
                        f"{bad[0]['first_non2xx_status']}) and "
                        f"{sum(r['socket_errors'] for r in bad)} socket errors: the figures "
                        "are not a cache-hit measurement"
                    )
        summaries = {t.name: summarize(t) for t in targets if t.measured}
        checks = make_checks(args, by_name, summaries)
        print_report(targets, summaries, checks, command, gateway_metrics)
        result = {
            "started": started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": command,
            "settings": {
                "duration": args.duration,
                "connections": args.connections,
                "threads": args.threads,
                "rounds": args.rounds,
                "warmup": args.warmup,
                "targets": args.target_list,
                "backends": args.backend_list,
                "payment_code": args.payment_code,
                "partner_service_id": args.partner_service_id,
                "uvicorn_flags": list(UVICORN_FLAGS),
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            },
            "git": git_state(),
            "targets": {
                t.name: {
                    "summary": summaries.get(t.name),
                    "runs": t.runs,
                    "answer_bytes": t.answer_bytes,
                    "server_stack": t.stack,
                    "log_problems": t.log_problems,
                    "unavailable": t.unavailable,
                    "failure": t.failure,
                }
                for t in targets
                if t.measured
            },
            "checks": [asdict(c) for c in checks],
            "gateway_metrics": gateway_metrics,
        }
        if not args.no_save:
            RESULTS.mkdir(exist_ok=True)
            path = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
            path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            print(f"results: {path.relative_to(ROOT)}")
        return exit_code(targets, checks)
    except BenchError as exc:
        print(f"\nbench: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        if args.keep_tmp:
            print(f"temp dir kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def make_checks(
    args: argparse.Namespace,
    by_name: Mapping[str, Target],
    summaries: Mapping[str, dict[str, Any] | None],
) -> list[Check]:
    bare, peer = by_name.get("bare"), by_name.get("peer")
    p99_note = (
        ""
        if args.connections == P99_TARGET_CONNECTIONS
        else f"target defined at {P99_TARGET_CONNECTIONS} connections"
    )
    checks: list[Check | None] = []
    for backend in args.backend_list:
        gateway = by_name.get(f"gateway-{backend}")
        if gateway is not None and not gateway.measured:
            gateway = None
        name = f"gateway-{backend}"
        checks.append(
            ratio_check(
                f"{name} / bare  req/s",
                gateway,
                bare,
                "rps",
                ">=",
                TARGET_GATEWAY_OVER_BARE[backend],
                summaries,
            )
        )
        checks.append(
            ratio_check(
                f"{name} / peer  req/s",
                gateway,
                peer,
                "rps",
                ">=",
                TARGET_GATEWAY_OVER_PEER,
                summaries,
            )
        )
        checks.append(
            ratio_check(
                f"{name} p99 / bare p99",
                gateway,
                bare,
                "p99_ms",
                "<=",
                TARGET_P99_OVER_BARE,
                summaries,
                p99_note,
            )
        )
    return [c for c in checks if c is not None]


def exit_code(targets: list[Target], checks: list[Check]) -> int:
    """0 all checks pass; 1 a check failed or could not be made; 2 a measurement failed."""
    if any(t.measured and t.failure is not None for t in targets):
        return 2
    if any(c.verdict in ("INVALID", "FAIL", "N/A") for c in checks):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
