"""The command line of bench/run.py, and the git state recorded with each result."""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Sequence
from typing import Any

from _report import MODES
from _targets import ROOT

MAX_DURATION = 240  # X-TIMESTAMP must stay within 300 s of now for a whole wrk run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="doku-gateway benchmark: hit/miss inquiries and payments, side by side"
    )
    add = parser.add_argument
    add("--modes", default=",".join(MODES), help="hit,miss,payment (all)")
    add("--connections", default=None, help="wrk connections, comma-separated (64,256)")
    add("--duration", type=int, default=None, help="seconds per recorded wrk run (10)")
    add("--rounds", type=int, default=None, help="interleaved rounds; figures are medians (3)")
    add("--warmup", type=int, default=1, help="seconds of unrecorded load per target first (1)")
    add("--fsync-seconds", type=float, default=None, help="fsync probe per round, seconds (3)")
    add("--quick", action="store_true", help="development: --duration 3 --rounds 1, 64 only")
    add("--threads", type=int, default=1, help="wrk threads (1)")
    add("--backends", default="memory,redis", help="gateway state backends")
    add("--targets", default="bare,gateway,peer", help="what to measure")
    add("--payment-code", default="8889900001234", help="the cache-hit VA number")
    add("--partner-service-id", default="   88899", help="BIN, space-padded")
    add("--wrk-timeout", type=int, default=5, help="wrk per-request timeout (s)")
    add("--keep-tmp", action="store_true", help="keep the temp dir (logs, keys, Lua, tables)")
    add("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    quick = {"connections": "64", "duration": 3, "rounds": 1, "fsync_seconds": 1.0}
    full = {"connections": "64,256", "duration": 10, "rounds": 3, "fsync_seconds": 3.0}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.mode_list = _split(parser, args.modes, MODES, "--modes")
    args.target_list = _split(parser, args.targets, ("bare", "gateway", "peer"), "--targets")
    args.backend_list = _split(parser, args.backends, ("memory", "redis"), "--backends")
    try:
        args.connection_list = sorted({int(c) for c in args.connections.split(",") if c.strip()})
    except ValueError:
        parser.error("--connections: comma-separated numbers, e.g. 64,256")
    if not 1 <= args.duration <= MAX_DURATION:
        parser.error(f"--duration must be 1..{MAX_DURATION} (X-TIMESTAMP skew)")
    if not args.connection_list or not 1 <= args.threads <= min(args.connection_list):
        parser.error("need 1 <= --threads <= every --connections")
    if max(args.connection_list) > 4096:
        parser.error("--connections: at most 4096")
    if not 1 <= args.rounds <= 9:
        parser.error("--rounds must be 1..9")
    if not 0 <= args.warmup <= 30 or not 0.5 <= args.fsync_seconds <= 30:
        parser.error("--warmup must be 0..30 and --fsync-seconds 0.5..30")
    return args


def _split(
    parser: argparse.ArgumentParser, value: str, allowed: Sequence[str], flag: str
) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items or any(item not in allowed for item in items):
        parser.error(f"{flag}: choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


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
