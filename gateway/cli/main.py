"""The ``doku-gateway`` command line (``doku-gateway --help`` lists the commands)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..exceptions import ConfigError
from ._common import describe, version
from .commands import (
    cache,
    config,
    doku,
    keys,
    payments,
    plugins,
    reconcile,
    serve,
    sign,
    simulate,
    uat,
)

__all__ = ["COMMANDS", "build_parser", "main"]

#: The command table, in ``--help`` order: each module adds its commands with ``register()``.
COMMANDS = (serve, config, simulate, uat, sign, keys, plugins, cache, payments, reconcile, doku)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (2 for a configuration error, one line, no
    traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        if len(exc.problems) == 1:
            print(f"doku-gateway: configuration error: {exc}", file=sys.stderr)
        else:
            print(f"doku-gateway: {len(exc.problems)} configuration errors:", file=sys.stderr)
            for key, message in exc.problems:
                print(f"  {key}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doku-gateway", description=describe(__doc__))
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(commands)
    return parser
