"""``doku-gateway cache purge``: forget cached answers in the shared (Redis) cache."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from ...config import load_settings
from .._common import Subcommands


def register(commands: Subcommands) -> None:
    cache = commands.add_parser("cache", help="manage the shared answer cache")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    purge = cache_commands.add_parser("purge", help="forget cached answers for VA numbers")
    purge.add_argument("va", nargs="+", help="VA numbers (spaces are ignored)")
    purge.add_argument("--config", metavar="FILE", help="TOML configuration file")
    purge.add_argument(
        "--redis-url",
        help="Redis URL (default: cache.url from the config or DOKU_GATEWAY_REDIS_URL)",
    )
    purge.add_argument("--prefix", default=None, help="key prefix (default: cache.prefix)")
    purge.set_defaults(func=_cache_purge)


def _cache_purge(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ...config import CacheSettings, is_memory_url
    from ...metrics import Metrics
    from ...state import create_state

    env = dict(os.environ)
    cache = load_settings(args.config, env).cache if args.config else CacheSettings()
    url = args.redis_url or env.get("DOKU_GATEWAY_REDIS_URL") or cache.url
    if not url or is_memory_url(url):
        print(
            "doku-gateway: the in-memory cache lives inside each gateway process; "
            "purge needs a Redis URL (--redis-url or cache.url)",
            file=sys.stderr,
        )
        return 2
    cache = replace(cache, url=url, prefix=args.prefix if args.prefix is not None else cache.prefix)

    async def purge() -> int:
        state = create_state(cache, Metrics())
        try:
            return await state.purge([va.replace(" ", "") for va in args.va])
        finally:
            await state.close()

    try:
        removed = asyncio.run(purge())
    except Exception as exc:  # a CLI reports, it does not dump a traceback
        print(f"doku-gateway: purge failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"purged {removed} cached answer(s) of {len(args.va)} VA number(s)")
    return 0
