"""doku-gateway check-config: everything serve does before binding its port, then exit.

Loads and validates every setting, reads every key file, imports every resolver plugin and runs
its factory's check(options) hook, builds each resolver, and with --connect pings Redis. Every
problem is reported at once, each naming its key; the exit code is 2 if there is any.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from ...config import CacheSettings, is_memory_url, load_settings
from ...exceptions import ConfigError
from ...resolvers.loader import check_resolvers
from ...web.rotation import loose_secret_files
from .._common import Subcommands, describe


def register(commands: Subcommands) -> None:
    check = commands.add_parser(
        "check-config",
        help="validate a configuration as serve would, report every problem, and exit",
        description=describe(__doc__),
    )
    check.add_argument("--config", metavar="FILE", required=True)
    check.add_argument(
        "--connect", action="store_true", help="also connect to cache.url (Redis) and ping it"
    )
    check.set_defaults(func=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, dict(os.environ), check_resolvers=True)
    problems = check_resolvers(settings.resolvers, build=True)
    if args.connect and not is_memory_url(settings.cache.url):
        error = asyncio.run(ping_redis(settings.cache))
        if error is not None:
            problems.append(("cache.url", error))
    if problems:
        raise ConfigError.collected(problems)
    for message in loose_secret_files(settings.credentials):
        print(f"warning: {message}", file=sys.stderr)
    backend = settings.cache.url.split("://")[0]
    print(f"ok: {len(settings.resolvers)} resolver(s), cache {backend}")
    return 0


async def ping_redis(cache: CacheSettings) -> str | None:
    """``None`` when Redis at ``cache.url`` answers a PING, else why not (one line)."""
    from ..._redis.connect import connect

    client, _, others = connect(cache)
    try:
        async with asyncio.timeout(max(cache.redis_connect_timeout * 4, 2.0)):
            await client.ping()
        return None
    except Exception as exc:
        return f"cannot reach Redis: {type(exc).__name__}: {exc}"
    finally:
        for each in (client, *others):
            # Closing a client that never connected may fail; nothing to report then.
            with contextlib.suppress(Exception):
                await each.aclose()
