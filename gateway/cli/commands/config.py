"""``doku-gateway check-config``: validate a configuration without starting anything."""

from __future__ import annotations

import argparse

from ...config import load_settings
from .._common import Subcommands


def register(commands: Subcommands) -> None:
    check = commands.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("--config", metavar="FILE", required=True)
    check.set_defaults(func=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    print(f"ok: {len(settings.resolvers)} resolver(s), cache {settings.cache.url.split('://')[0]}")
    return 0
