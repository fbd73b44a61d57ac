"""``doku-gateway payments …``: look into the payment journal (dead letters, replay)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from ...config import load_settings
from .._common import Subcommands


def register(commands: Subcommands) -> None:
    payments = commands.add_parser("payments", help="the payment journal's dead letters")
    payment_commands = payments.add_subparsers(dest="payments_command", required=True)
    dead = payment_commands.add_parser("dead-letters", help="list payments whose delivery failed")
    replay = payment_commands.add_parser("replay", help="deliver a dead letter again")
    replay.add_argument("dead_id", help="the id shown by 'payments dead-letters'")
    for sub in (dead, replay):
        source = sub.add_mutually_exclusive_group(required=True)
        source.add_argument("--config", metavar="FILE", help="TOML configuration file")
        source.add_argument("--demo-dir", help="the demo directory (its journal)")
    dead.set_defaults(func=_dead_letters)
    replay.set_defaults(func=_replay)


def _journal_from_args(args: argparse.Namespace) -> Any:
    from ...payments.journal import create_journal

    if args.config:
        settings = load_settings(args.config, dict(os.environ))
        return create_journal(settings)
    from ...payments.journal.file import FileJournal

    return FileJournal(Path(args.demo_dir) / "journal")


def _dead_letters(args: argparse.Namespace) -> int:
    async def run() -> int:
        journal = _journal_from_args(args)
        try:
            letters = await journal.dead_letters()
        finally:
            await journal.close()
        for letter in letters:
            print(
                json.dumps(
                    {
                        "id": letter.dead_id,
                        "paymentRequestId": letter.entry.payment_request_id,
                        "virtualAccountNo": letter.entry.body.get("virtualAccountNo"),
                        "attempts": letter.attempts,
                        "error": letter.error,
                        "parkedAt": letter.parked_at,
                    },
                    ensure_ascii=False,
                )
            )
        print(f"{len(letters)} dead letter(s)", file=sys.stderr)
        return 0

    return asyncio.run(run())


def _replay(args: argparse.Namespace) -> int:
    async def run() -> bool:
        journal = _journal_from_args(args)
        try:
            return bool(await journal.replay(args.dead_id))
        finally:
            await journal.close()

    if asyncio.run(run()):
        print(f"{args.dead_id} queued for delivery again")
        return 0
    print(f"doku-gateway: no dead letter {args.dead_id}", file=sys.stderr)
    return 1
