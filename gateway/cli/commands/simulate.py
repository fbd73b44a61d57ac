"""doku-gateway simulate: act as DOKU against a running gateway.

Credentials come from the demo directory (default .demo), or from --config FILE with DOKU's
private key given by --doku-private-key (the key whose public half the gateway has as
doku.public_key). Inquires each VA number; "simulate pay VA…" posts signed payment
notifications, with the amount and trxId of the VA's inquiry answer unless given. Exits 1 when
an answer is not the expected success, 2 when nothing answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from ...config import load_settings
from .._common import Subcommands, describe, fail

_EXPECTED = {"inquiry": "2002400", "pay": "2002500"}


def register(commands: Subcommands) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="act as DOKU against a running gateway: inquire VA numbers, or "
        "'simulate pay VA…' to post signed payment notifications",
        description=describe(__doc__),
    )
    simulate.add_argument("va", nargs="+", help="[pay] VA numbers (payment codes)")
    simulate.add_argument(
        "--amount", help="paid amount for 'pay' (default: the amount the inquiry answered)"
    )
    simulate.add_argument("--trx-id", help="trxId for 'pay' (default: the inquiry's trxId)")
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
    simulate.add_argument("--config", metavar="FILE", help="take credentials from this config")
    simulate.add_argument(
        "--doku-private-key",
        metavar="FILE",
        help="with --config: DOKU's private key (PEM) to sign as DOKU",
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


def _simulator(args: argparse.Namespace) -> tuple[Any, str] | str:
    """The simulator and the default URL, or why they cannot be made (one line)."""
    from ...doku.simulator import DokuSimulator
    from ...snap.keys import load_private_key

    port = os.environ.get("PORT", "8080")
    if args.config:
        if not args.doku_private_key:
            return "--config needs --doku-private-key FILE (DOKU's private key, to sign as DOKU)"
        settings = load_settings(args.config, dict(os.environ))
        try:
            doku_key = load_private_key(Path(args.doku_private_key).read_bytes())
        except (OSError, ValueError) as exc:
            return f"cannot read DOKU's private key {args.doku_private_key}: {exc}"
        host = settings.http.host if settings.http.host not in ("0.0.0.0", "::") else "127.0.0.1"
        paths = settings.paths
        simulator = DokuSimulator(
            settings.credentials.client_id,
            settings.credentials.client_secret,
            doku_key,
            token_path=paths.token,
            inquiry_path=paths.inquiry,
            payment_path=paths.payment,
        )
        return simulator, f"http://{host}:{settings.http.port}{settings.http.path_prefix}"
    root = Path(args.demo_dir)
    try:
        credentials = json.loads((root / "credentials.json").read_text(encoding="utf-8"))
        doku_key = load_private_key((root / "doku_private.pem").read_bytes())
    except (OSError, ValueError) as exc:
        return f"cannot read demo credentials in {root}: {exc}"
    paths_doc = credentials.get("paths", {})
    simulator = DokuSimulator(
        credentials["client_id"],
        credentials["client_secret"],
        doku_key,
        token_path=paths_doc.get("token", "/v1.0/access-token/b2b"),
        inquiry_path=paths_doc.get("inquiry", "/v1.1/transfer-va/inquiry"),
        payment_path=paths_doc.get("payment", "/v1.0/transfer-va/payment"),
    )
    return simulator, f"http://127.0.0.1:{port}"


async def _simulate_async(args: argparse.Namespace) -> int:
    import httpx

    made = _simulator(args)
    if isinstance(made, str):
        return fail(made, 2)
    simulator, default_url = made
    url = args.url or default_url
    codes = list(args.va)
    pay = codes[0] == "pay"
    if codes[0] in ("pay", "inquiry"):
        codes = codes[1:]
    if not codes:
        return fail("name at least one VA number", 2)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
            return await _run(args, simulator, client, codes, pay)
    except httpx.TransportError as exc:
        return fail(f"nothing answers at {url}: {type(exc).__name__}: {exc}", 2)
    except RuntimeError as exc:  # the token was refused
        return fail(f"{url}: {exc}")


async def _run(
    args: argparse.Namespace, simulator: Any, client: Any, codes: list[str], pay: bool
) -> int:
    from ...doku.simulator import inquiry_body, payment_body

    token = await simulator.get_token(client)
    print("token: 2007300")
    failed = 0
    for va in codes:
        code = va.replace(" ", "")
        partner = args.partner_service_id or code[:5]
        inquiry = simulator.inquiry_request(token, inquiry_body(code, partner), pretty=args.pretty)
        if pay:
            amount, trx_id = args.amount, args.trx_id
            if amount is None or trx_id is None:
                answered = (await simulator.send(client, inquiry)).json()
                bill = answered.get("virtualAccountData") or {}
                amount = amount or (bill.get("totalAmount") or {}).get("value")
                trx_id = trx_id or (bill.get("additionalInfo") or {}).get("trxId")
                if amount is None:
                    print(f"\n{va}: inquiry answered {answered.get('responseCode')}; no bill")
                    print(json.dumps(answered, indent=2, ensure_ascii=False))
                    failed += 1
                    continue
            document = payment_body(
                code, partner, amount, payment_request_id=args.payment_request_id, trx_id=trx_id
            )
            request = simulator.payment_request(token, document, pretty=args.pretty)
        else:
            request = inquiry
        response = await simulator.send(client, request)
        answer = response.json()
        print(f"\n{va}: HTTP {response.status_code}")
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        if answer.get("responseCode") != _EXPECTED["pay" if pay else "inquiry"]:
            failed += 1
    return 1 if failed else 0
