"""``doku-gateway reconcile``: journal the payments whose notification went missing.

One pass of :class:`~gateway.payments.reconcile.Reconciler` over the inquiry ledger with the
configured journal, ledger and DOKU client; run it from cron or a Kubernetes CronJob every
minute or so. Prints the report as JSON and exits 0 when the pass ran (DOKU's errors are in the
report), 1 when the journal or ledger failed, 2 on a configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from ...config import Settings
from ...doku.client import DokuClient
from ...exceptions import ConfigError
from ...log import configure_logging
from ...payments.ledger import create_ledger
from ...payments.reconcile import Reconciler, ReconcileReport
from .._common import Subcommands, load, log_secrets, with_base_url

__all__ = ["register"]


def register(commands: Subcommands) -> None:
    """Add ``reconcile`` to the CLI's subcommands."""
    parser = commands.add_parser(
        "reconcile",
        help="ask DOKU's check status about VAs answered with a bill but never paid here, "
        "and journal the payments it reports",
    )
    parser.add_argument("--config", metavar="FILE", required=True, help="TOML configuration file")
    parser.add_argument(
        "--min-age",
        type=float,
        default=60.0,
        help="seconds since the inquiry before asking DOKU (default 60, as DOKU advises)",
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=172_800.0,
        help="seconds after which an unpaid VA is dropped from the ledger (default 172800)",
    )
    parser.add_argument("--base-url", help="DOKU's base URL (default: client.base_url)")
    parser.set_defaults(func=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        if args.min_age < 0 or args.max_age < args.min_age:
            raise ConfigError("--max-age", "need 0 <= --min-age <= --max-age")
    except ConfigError as exc:
        print(f"doku-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    # The CLI configures logging once; when embedded (tests, cli.main already set up) leave it.
    if not logging.getLogger().handlers:
        configure_logging(settings.log_level, log_secrets(settings), settings.log_format)
    try:
        report = asyncio.run(_run(settings, args.min_age, args.max_age))
    except ConfigError as exc:
        print(f"doku-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a CLI reports, it does not dump a traceback
        print(f"doku-gateway: reconcile failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict()))
    return 0


async def _run(settings: Settings, min_age: float, max_age: float) -> ReconcileReport:
    from ...payments.journal import create_journal

    journal = create_journal(settings)
    try:
        ledger = create_ledger(settings)
        try:
            async with DokuClient.from_settings(settings) as client:
                reconciler = Reconciler(ledger, journal, client, min_age=min_age, max_age=max_age)
                report = await reconciler.run_once()
        finally:
            await ledger.close()
    finally:
        await journal.close()
    return report


def _settings(args: argparse.Namespace) -> Settings:
    return with_base_url(load(args.config), args.base_url)
