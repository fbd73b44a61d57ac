"""doku-gateway payments: look into the payment journal (list, show, dead letters, replay).

Needs only the journal's settings (cache and payment sections): neither the DOKU credentials nor
any resolver's secrets have to be set. Times are ISO-8601 in WIB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ...config import journal_on_redis as on_redis
from ...config import load_journal_settings
from ...exceptions import ConfigError
from ...payments.journal.base import DeadLetter, Journal, JournalEntry
from ...snap.timestamps import WIB
from .._common import Subcommands, describe, fail

_T = TypeVar("_T")


def register(commands: Subcommands) -> None:
    payments = commands.add_parser(
        "payments",
        help="the payment journal: list, show, dead letters, replay",
        description=describe(__doc__),
    )
    sub = payments.add_subparsers(dest="payments_command", required=True)
    listing = sub.add_parser("list", help="journaled payments, oldest first")
    listing.add_argument("--va", help="only this virtualAccountNo (spaces ignored)")
    listing.add_argument(
        "--since", help="received at or after this ISO-8601 time (default zone WIB)"
    )
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    show = sub.add_parser("show", help="one payment by paymentRequestId, with its full body")
    show.add_argument("payment_request_id")
    dead = sub.add_parser("dead-letters", help="payments whose delivery failed")
    replay = sub.add_parser("replay", help="deliver a dead letter again")
    replay.add_argument("dead_id", help="the id shown by 'payments dead-letters'")
    for each in (listing, show, dead, replay):
        source = each.add_mutually_exclusive_group(required=True)
        source.add_argument("--config", metavar="FILE", help="TOML configuration file")
        source.add_argument("--demo-dir", help="the demo directory (its journal)")
    listing.set_defaults(func=_list)
    show.set_defaults(func=_show)
    dead.set_defaults(func=_dead_letters)
    replay.set_defaults(func=_replay)


def _journal(args: argparse.Namespace) -> Journal:
    if args.config:
        cache, payment = load_journal_settings(args.config, dict(os.environ))
        if on_redis(cache, payment):
            from ...payments.journal.redis import RedisJournal

            return RedisJournal.from_settings(cache, payment)
        directory = payment.journal_dir
    else:
        directory = str(Path(args.demo_dir) / "journal")
    from ...payments.journal.file import FileJournal

    return FileJournal(directory)


def _with_journal(args: argparse.Namespace, use: Callable[[Journal], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        journal = _journal(args)
        try:
            return await use(journal)
        finally:
            await journal.close()

    return asyncio.run(run())


def wib(moment: float) -> str:
    """An epoch time as ISO-8601 in WIB (``2026-11-29T14:05:03+07:00``)."""
    return datetime.fromtimestamp(moment, WIB).isoformat(timespec="seconds")


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError("--since", f"{text!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=WIB)
    return moment.timestamp()


def summary(entry: JournalEntry) -> dict[str, Any]:
    """The fields a person looks for first, times in WIB."""
    body = entry.body
    amount = body.get("paidAmount") or {}
    return {
        "paymentRequestId": entry.payment_request_id,
        "virtualAccountNo": body.get("virtualAccountNo"),
        "trxId": body.get("trxId"),
        "paidAmount": f"{amount.get('value')} {amount.get('currency', '')}".strip(),
        "receivedAt": wib(entry.received_at),
    }


def _print(document: dict[str, Any]) -> None:
    print(json.dumps(document, ensure_ascii=False))


def _list(args: argparse.Namespace) -> int:
    since = _since(args.since)

    async def use(journal: Journal) -> list[tuple[JournalEntry, bool]]:
        entries = await journal.entries(since=since, va=args.va, limit=args.limit)
        return [(e, await journal.is_delivered(e.payment_request_id)) for e in entries]

    for entry, delivered in _with_journal(args, use):
        _print({**summary(entry), "delivered": delivered})
    return 0


def _show(args: argparse.Namespace) -> int:
    async def use(journal: Journal) -> tuple[JournalEntry | None, bool, DeadLetter | None]:
        entry = await journal.find(args.payment_request_id)
        if entry is None:
            return None, False, None
        delivered = await journal.is_delivered(entry.payment_request_id)
        dead = [
            d
            for d in await journal.dead_letters()
            if d.entry.payment_request_id == entry.payment_request_id
        ]
        return entry, delivered, dead[-1] if dead else None

    entry, delivered, dead = _with_journal(args, use)
    if entry is None:
        return fail(f"no payment {args.payment_request_id} in the journal")
    document = {**summary(entry), "delivered": delivered, "body": dict(entry.body)}
    if dead is not None:
        document["deadLetter"] = _dead(dead)
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


def _dead(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.dead_id,
        **summary(letter.entry),
        "attempts": letter.attempts,
        "error": letter.error,
        "parkedAt": wib(letter.parked_at),
    }


def _dead_letters(args: argparse.Namespace) -> int:
    async def use(journal: Journal) -> list[DeadLetter]:
        return await journal.dead_letters()

    letters = _with_journal(args, use)
    for letter in letters:
        _print(_dead(letter))
    print(f"{len(letters)} dead letter(s)", file=sys.stderr)
    return 0


def _replay(args: argparse.Namespace) -> int:
    async def use(journal: Journal) -> bool:
        return bool(await journal.replay(args.dead_id))

    if _with_journal(args, use):
        print(f"{args.dead_id} queued for delivery again")
        return 0
    return fail(f"no dead letter {args.dead_id}")
