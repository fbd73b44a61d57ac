"""``doku-gateway simulate``: act as DOKU against a running gateway."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from .._common import Subcommands


def register(commands: Subcommands) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="act as DOKU against a running gateway: inquire VA numbers, or "
        "'simulate pay VA…' to post signed payment notifications",
    )
    simulate.add_argument("va", nargs="+", help="[pay] VA numbers (payment codes)")
    simulate.add_argument("--amount", default="25000.00", help="paid amount for 'pay'")
    simulate.add_argument("--payment-request-id", help="for 'pay' (default: random)")
    simulate.add_argument(
        "--url",
        default=None,
        help="gateway base URL (default http://127.0.0.1:$PORT, PORT defaulting to 8080)",
    )
    simulate.add_argument(
        "--demo-dir",
        default=".demo",
        help="read credentials and DOKU's key from here (default .demo)",
    )
    simulate.add_argument(
        "--partner-service-id",
        default=None,
        help="BIN/prefix (default: the first 5 digits of each VA)",
    )
    simulate.add_argument("--pretty", action="store_true", help="send pretty-printed bodies")
    simulate.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    return asyncio.run(_simulate_async(args))


async def _simulate_async(args: argparse.Namespace) -> int:
    import httpx

    from ...doku.simulator import DokuSimulator, inquiry_body, payment_body
    from ...snap.keys import load_private_key

    root = Path(args.demo_dir)
    try:
        credentials = json.loads((root / "credentials.json").read_text(encoding="utf-8"))
        doku_key = load_private_key((root / "doku_private.pem").read_bytes())
    except (OSError, ValueError) as exc:
        print(f"doku-gateway: cannot read demo credentials in {root}: {exc}", file=sys.stderr)
        return 2
    paths = credentials.get("paths", {})
    simulator = DokuSimulator(
        credentials["client_id"],
        credentials["client_secret"],
        doku_key,
        token_path=paths.get("token", "/v1.0/access-token/b2b"),
        inquiry_path=paths.get("inquiry", "/v1.1/transfer-va/inquiry"),
        payment_path=paths.get("payment", "/v1.0/transfer-va/payment"),
    )
    url = args.url or f"http://127.0.0.1:{os.environ.get('PORT', '8080')}"
    codes = list(args.va)
    pay = codes[0] == "pay"
    if codes[0] in ("pay", "inquiry"):
        codes = codes[1:]
    if not codes:
        print("doku-gateway: name at least one VA number", file=sys.stderr)
        return 2
    worst = 0
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        token = await simulator.get_token(client)
        print("token: 2007300")
        for va in codes:
            code = va.replace(" ", "")
            partner = args.partner_service_id or code[:5]
            if pay:
                document = payment_body(
                    code, partner, args.amount, payment_request_id=args.payment_request_id
                )
                request = simulator.payment_request(token, document, pretty=args.pretty)
            else:
                request = simulator.inquiry_request(
                    token, inquiry_body(code, partner), pretty=args.pretty
                )
            response = await simulator.send(client, request)
            print(f"\n{va}: HTTP {response.status_code}")
            print(json.dumps(response.json(), indent=2, ensure_ascii=False))
            worst = max(worst, 0 if response.status_code < 500 else 1)
    return worst
