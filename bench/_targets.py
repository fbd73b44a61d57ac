"""The servers under test: how each is started, when it is ready, and what its /metrics say."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _proc import HOST, READY_TIMEOUT, BenchError, Children, free_port, log_tail, poll

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SHARED = Path(os.environ.get("DOKU_BENCH_SHARED", ROOT.parent / "shared" / "bench")).resolve()
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
GATEWAY_BIN = ROOT / ".venv" / "bin" / "doku-gateway"
PEER_PYTHON = BENCH / ".venv-peer" / "bin" / "python"

UVICORN_FLAGS = ("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--workers", "1")

#: What each server process is, for the report.
DESCRIPTIONS = {
    "bare": "bare Starlette, inquiry path",
    "bare-payment": "bare Starlette, payment path",
    "gateway-memory": "memory state, file journal (fsync)",
    "gateway-redis": "Redis state (no persistence)",
    "gateway-redis-aof": "Redis state + Redis journal, appendfsync always",
    "peer": "FastAPI + DOKU SDK + Redis GET",
}

#: The /metrics lines the harness reads: cache hits and misses prove a hit or miss run, the
#: payment counters prove that every ack was journaled once.
WANTED_METRICS = (
    "doku_gateway_cache_lookups_total",
    "doku_gateway_rejected_requests_total",
    "doku_gateway_replayed_requests_total",
    "doku_gateway_inquiries_total",
    "doku_gateway_payment_notifications_total",
    "doku_gateway_payment_deliveries_total",
    "doku_gateway_journal_backlog",
)


@dataclass
class Target:
    """One server process (several modes may measure the same one)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    ready_path: str  # GET this; any HTTP answer (or 200 for a gateway) means ready
    proc: subprocess.Popen[bytes] | None = None
    unavailable: str | None = None  # the target cannot run in this version (not a failure)
    failure: str | None = None  # the target should have run but did not, or answered wrongly
    answer_bytes: dict[str, int] = field(default_factory=dict)  # per mode
    stack: dict[str, bool] = field(default_factory=dict)  # uvloop/httptools loaded?
    log_problems: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def usable(self) -> bool:
        return self.unavailable is None and self.failure is None

    @property
    def is_gateway(self) -> bool:
        return self.name.startswith("gateway-")

    def check_alive(self) -> None:
        """Mark the target failed if its process has exited."""
        assert self.proc is not None
        if self.usable and self.proc.poll() is not None:
            self.failure = (
                f"process exited during the run (status {self.proc.returncode}; a log that "
                f"ends in a clean shutdown means something outside sent it a signal)\n"
                f"{log_tail(self.log, 25)}"
            )


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOKU_GATEWAY_", "PEER_"))}
    for name in ("BARE_RESPONSE_FILE", "BARE_PATH"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def uvicorn_target(
    name: str, python: Path, app: str, tmp: Path, extra_env: dict[str, str]
) -> Target:
    port = free_port()
    argv = [
        str(python),
        *("-m", "uvicorn", *UVICORN_FLAGS),
        *("--host", HOST, "--port", str(port)),
        *("--app-dir", str(SHARED), app),
    ]
    env = base_env()
    env.update(extra_env)
    return Target(name, argv, env, port, tmp / f"{name}.log", "/")


def gateway_target(name: str, tmp: Path, demo_dir: Path, redis_url: str | None) -> Target:
    """``doku-gateway serve --demo``; with a Redis ``cache.url`` the journal is on Redis too
    (``payment.journal = auto``), else the fsync'd file journal in the demo directory."""
    port = free_port()
    env = base_env()
    if redis_url is not None:
        env["DOKU_GATEWAY_CACHE_URL"] = redis_url
    argv = [
        str(GATEWAY_BIN),
        *("serve", "--demo", "--demo-dir", str(demo_dir)),
        *("--host", HOST, "--port", str(port)),
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
    if (
        target.name.startswith("gateway-redis")
        and "cache.url" in text
        and ("configuration error" in text)
    ):
        reason = next((ln for ln in text.splitlines() if "configuration error" in ln), text)
        target.unavailable = f"the gateway refuses a Redis cache.url ({reason.strip()})"
    else:
        target.failure = f"exited with status {code} before it was ready\n{log_tail(target.log)}"


def scrape_metrics(client: httpx.Client, target: Target) -> dict[str, float]:
    """The counters of :data:`WANTED_METRICS` from the gateway's /metrics ({} if it fails)."""
    try:
        text = client.get(target.url + "/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(WANTED_METRICS):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                found[name] = float(value)
    return found


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        name: value - before.get(name, 0.0)
        for name, value in after.items()
        if value != before.get(name, 0.0)
    }


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    """The sum of a scraped counter's series that carry ``labels``, e.g.
    ``metric(m, "doku_gateway_cache_lookups_total", result="hit")``."""
    total = 0.0
    for series, value in values.items():
        base, _, rest = series.partition("{")
        if base == name and all(f'{key}="{label}"' in rest for key, label in labels.items()):
            total += value
    return total
