"""Side-by-side benchmark of doku-gateway: cache-hit inquiry, cache-miss inquiry and payment
notification, against a bare Starlette ceiling and a FastAPI + DOKU-SDK peer.

Starts private redis-servers, the gateway (memory and Redis state backends), the references from
../shared/bench, each as its own one-worker uvicorn process on a free loopback port, then drives
each with wrk in interleaved rounds and reports medians and the ratios the product is held to.
See bench/README.md.

Run:  .venv/bin/python bench/run.py [--modes hit,miss,payment] [--connections 64,256]
                                    [--duration 10] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _fsync import filesystem, probe
from _options import git_state, parse_args
from _proc import (
    BenchError,
    Children,
    log_problems,
    raise_on_term,
    redis_set_many,
    start_redis,
)
from _report import (
    Check,
    Series,
    cell_checks,
    exit_code,
    print_report,
    summarize,
    verify,
)
from _setup import build_targets, check_targets, needs, preflight
from _signing import (
    MAX_TABLE,
    Credentials,
    build_table,
    fetch_token,
    peer_bills,
    signed_inquiry,
)
from _targets import DESCRIPTIONS, ROOT, Target, metrics_delta, scrape_metrics
from _wrk import one_request_script, run_wrk, table_script

from gateway.doku.simulator import DokuSimulator
from gateway.resolvers.demo import ensure_demo_files
from gateway.snap.keys import load_private_key

RESULTS = ROOT / "bench" / "results"
TOKEN_REFRESH_AFTER = 300.0
FIRST_RATE_GUESS = 30_000.0  # req/s, to size a table before a target's rate is known
MIN_TABLE_RATE = 10_000.0  # req/s: signing is cheap (~5 us), a wrapped table spoils a run
TABLE_HEADROOM = 2.0
DRAIN_TIMEOUT = 60.0
BACKLOG = "doku_gateway_journal_backlog"


@dataclass
class Bench:
    """What one measurement run needs between wrk runs."""

    args: argparse.Namespace
    wrk: str
    tmp: Path
    creds: Credentials
    client: httpx.Client
    token_url: str
    ports: dict[str, int]  # redis ports: volatile, durable
    answers: dict[str, bytes]  # the gateway's answer per mode (the peer's bills come from it)
    rates: dict[str, float] = field(default_factory=dict)  # best req/s seen, per target
    table_runs: int = 0
    fsync_runs: list[dict[str, Any]] = field(default_factory=list)


def table_size(bench: Bench, series: Series, duration: int) -> int:
    """Enough distinct requests that none repeats within the run: the target's best rate in
    any mode so far (a cache-hit rate bounds the others), with headroom."""
    rate = max(bench.rates.get(series.name, FIRST_RATE_GUESS), MIN_TABLE_RATE)
    return min(int(rate * duration * TABLE_HEADROOM) + 2000, MAX_TABLE)


def drain_deliveries(bench: Bench, target: Target) -> tuple[float | None, float]:
    """After a payment run, wait for the background delivery to catch up so that it does not
    run into the next target's measurement: (journal backlog when wrk stopped, seconds waited).
    The backlog is the gateway's own gauge, sampled at each scrape of /metrics."""
    started = time.monotonic()
    backlog_at_end: float | None = None
    while True:
        values = scrape_metrics(bench.client, target)
        if BACKLOG not in values:
            return None, 0.0  # a gateway without the gauge: nothing to wait for
        backlog = values[BACKLOG]
        if backlog_at_end is None:
            backlog_at_end = backlog
        waited = time.monotonic() - started
        if backlog <= 0 or waited > DRAIN_TIMEOUT:
            if backlog > 0:
                print(f"    note: {target.name}: {backlog:.0f} deliveries still pending")
            return backlog_at_end, waited
        time.sleep(0.2)


def one_run(bench: Bench, series: Series, duration: int, label: str) -> dict[str, Any]:
    args, creds, target = bench.args, bench.creds, series.target
    if time.monotonic() - creds.token_at > TOKEN_REFRESH_AFTER:
        fetch_token(creds, bench.client, bench.token_url)
    run_id = f"{secrets.randbelow(10**10):010d}"
    script = bench.tmp / f"wrk-{series.mode}-{target.name}.lua"
    table = None
    path = ""
    # Signed right before the run: X-TIMESTAMP stays well inside the gateway's 300 s window.
    if series.mode == "hit":
        request = signed_inquiry(creds, args.payment_code, args.partner_service_id)
        path = request.path
        script.write_text(one_request_script(request, target.port, run_id), encoding="utf-8")
    else:
        bench.table_runs += 1
        kind = "payment" if series.mode == "payment" else "inquiry"
        size = table_size(bench, series, duration)
        table = build_table(creds, kind, bench.table_runs, size, args.partner_service_id, bench.tmp)
        if series.role == "peer":
            bills = peer_bills(bench.answers["miss"], table)
            redis_set_many(bench.ports["volatile"], bills, ttl=duration + 300, batch=5000)
        path = table.path
        script.write_text(table_script(table, target.port, run_id, args.threads), "utf-8")
    before = scrape_metrics(bench.client, target) if target.is_gateway else {}
    result = run_wrk(
        bench.wrk,
        target.url + path,
        script,
        connections=series.connections,
        threads=args.threads,
        duration=duration,
        timeout=args.wrk_timeout,
        name=target.name,
    )
    if table is not None:
        result["table"] = {"run": table.run, "size": table.size, "sign_s": table.seconds}
        if not args.keep_tmp:
            table.signatures.unlink(missing_ok=True)
    if target.is_gateway:
        if series.mode == "payment":
            result["delivery_backlog"], result["drain_s"] = drain_deliveries(bench, target)
        result["metrics"] = metrics_delta(before, scrape_metrics(bench.client, target))
    bench.rates[target.name] = max(bench.rates.get(target.name, 0.0), result["rps"])
    flag = ""
    if result["non2xx"] or result["socket_errors"]:
        flag = (
            f"  !!! {result['non2xx']} non-2xx (first {result['first_non2xx_status']}), "
            f"{result['socket_errors']} socket errors"
        )
    if result.get("delivery_backlog"):
        flag += (
            f"  (delivery backlog {result['delivery_backlog']:.0f} at the end, "
            f"drained in {result['drain_s']:.1f}s)"
        )
    if result["wrapped"]:
        # Only a gateway remembers a VA; bare and the peer answer a repeated one the same.
        mark = "!!!" if target.is_gateway else "note:"
        size = table.size if table else 0
        flag += f"  {mark} table of {size} wrapped {result['wrapped']} times"
    print(
        f"  {label:<8} {series.mode:<7} c={series.connections:<4} {target.name:<18}"
        f"{result['rps']:>8.0f}/s  p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms"
        f"{flag}",
        flush=True,
    )
    return result


def steps(cells: list[list[Series]], rounds: int) -> Iterator[tuple[int, Series | None]]:
    """Serpentine order (A B C, C B A, …) over every series of every cell, the fsync probe
    (``None``) just before the payment cells: a drift of the machine weighs on all alike."""
    order: list[Series | None] = []
    for cell in cells:
        if cell and cell[0].mode == "payment" and None not in order:
            order.append(None)
        order.extend(cell)
    for number in range(rounds):
        for item in order if number % 2 == 0 else list(reversed(order)):
            yield number + 1, item


def measure(bench: Bench, cells: list[list[Series]]) -> None:
    args = bench.args
    active = [s for cell in cells for s in cell if s.target.usable]
    if args.warmup:
        print(f"warm-up: {args.warmup}s per target and mode (not recorded)", flush=True)
        warmed: set[tuple[str, str]] = set()
        for first in active:
            if (first.mode, first.name) not in warmed and first.target.usable:
                warmed.add((first.mode, first.name))
                one_run(bench, first, args.warmup, "warm-up")
    runs = len(active)
    minutes = (runs * (args.rounds * (args.duration + 1)) + args.rounds * args.fsync_seconds) / 60
    print(
        f"measuring (about {minutes:.0f} min more): {args.rounds} round(s) x {args.duration}s, "
        "connections "
        f"{', '.join(map(str, args.connection_list))}, {args.threads} wrk thread(s)",
        flush=True,
    )
    for number, series in steps(cells, args.rounds):
        if series is None:
            result = probe(bench.tmp / "demo" / "fsync-probe", args.fsync_seconds)
            result["round"] = number
            bench.fsync_runs.append(result)
            print(f"  round {number}  fsync probe: {result['fsyncs_per_s']:.0f} fsync/s")
            continue
        target = series.target
        assert target.proc is not None
        target.check_alive()
        if not target.usable:
            continue
        result = one_run(bench, series, args.duration, f"round {number}")
        result["round"] = number
        series.runs.append(result)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv)
    # Ctrl-C raises KeyboardInterrupt even where the caller started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_on_term)
    signal.signal(signal.SIGHUP, raise_on_term)
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="doku-bench-"))
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    try:
        volatile, durable = needs(args)
        wrk, redis_server = preflight(args, volatile or durable)
        ports: dict[str, int] = {}
        for name, wanted, is_durable in (("volatile", volatile, False), ("durable", durable, True)):
            if wanted:
                assert redis_server is not None
                ports[name] = start_redis(
                    children,
                    f"redis-{name}",
                    redis_server,
                    tmp / f"redis-{name}",
                    tmp / f"redis-{name}.log",
                    os.environ,
                    is_durable,
                )
        files = ensure_demo_files(tmp / "demo")
        simulator = DokuSimulator(
            files.client_id, files.client_secret, load_private_key(files.doku_private.read_bytes())
        )
        creds = Credentials(simulator, files)
        targets, cells = build_targets(args, tmp, files, ports)
        with httpx.Client() as client:
            answers = check_targets(args, children, client, creds, targets, cells, ports, tmp)
            token_url = targets["gateway-memory"].url
            bench = Bench(args, wrk, tmp, creds, client, token_url, ports, answers)
            print(f"journal filesystem: {filesystem(tmp / 'demo')}")
            measure(bench, cells)
        for target in targets.values():
            target.log_problems = log_problems(target.log)
        for cell in cells:
            for series in cell:
                series.judge_runs()
        checks: list[Check] = [check for cell in cells for check in cell_checks(cell)]
        verification = [item for cell in cells for item in verify(cell)]
        fsync: dict[str, Any] = {}
        if bench.fsync_runs:
            rates = sorted(r["fsyncs_per_s"] for r in bench.fsync_runs)
            fsync = {
                "fsyncs_per_s": rates[len(rates) // 2],
                "runs": bench.fsync_runs,
                "filesystem": filesystem(tmp / "demo"),
            }
        load = (load_before, os.getloadavg())
        started_list = list(targets.values())
        print_report(cells, checks, verification, fsync, started_list, load, command)
        document = {
            "started": started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": command,
            "settings": {k: v for k, v in vars(args).items() if not k.endswith("_list")},
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_before": load_before,
                "loadavg_after": load[1],
            },
            "git": git_state(),
            "targets": {
                t.name: {
                    "description": DESCRIPTIONS.get(t.name),
                    "answer_bytes": t.answer_bytes,
                    "server_stack": t.stack,
                    "log_problems": t.log_problems,
                    "unavailable": t.unavailable,
                    "failure": t.failure,
                }
                for t in started_list
            },
            "cells": [
                {
                    "mode": cell[0].mode,
                    "connections": cell[0].connections,
                    "series": {
                        s.name: {
                            "role": s.role,
                            "backend": s.backend,
                            "summary": summarize(s),
                            "failure": s.failure,
                            "runs": s.runs,
                        }
                        for s in cell
                    },
                }
                for cell in cells
                if cell
            ],
            "fsync": fsync,
            "checks": [asdict(c) for c in checks],
            "verification": verification,
        }
        if not args.no_save:
            RESULTS.mkdir(exist_ok=True)
            path = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
            path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
            print(f"results: {path.relative_to(ROOT)}")
        return exit_code(started_list, cells, checks, verification)
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


if __name__ == "__main__":
    sys.exit(main())
