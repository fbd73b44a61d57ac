"""The ``doku-gateway`` command line (``doku-gateway --help`` lists the commands)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import Settings, load_settings
from ..exceptions import ConfigError
from ..log import configure_logging, get_logger

__all__ = ["main"]

_log = get_logger("cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"doku-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doku-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--demo",
        action="store_true",
        help="generated keys in --demo-dir, demo resolver, in-memory cache",
    )
    source.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument("--demo-dir", default=".demo", help="where demo keys live (default .demo)")
    serve.add_argument("--host", help="override http.host")
    serve.add_argument("--port", type=int, help="override http.port")
    serve.set_defaults(func=_serve)

    check = commands.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("--config", metavar="FILE", required=True)
    check.set_defaults(func=_check_config)

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

    keygen = commands.add_parser("keygen", help="generate an RSA-2048 key pair (PEM)")
    keygen.add_argument("--out", default=".", help="directory (default: current)")
    keygen.add_argument("--name", default="merchant", help="file name stem (default merchant)")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    keygen.set_defaults(func=_keygen)

    sign = commands.add_parser(
        "sign", help="show string-to-sign, body hash and X-SIGNATURE (debug signature mismatches)"
    )
    sign.add_argument(
        "--secret",
        help="client secret, or env:NAME / file:PATH "
        "(default: env DOKU_GATEWAY_DOKU_CLIENT_SECRET)",
    )
    sign.add_argument("--token", default="", help="access token (without 'Bearer ')")
    sign.add_argument("--path", default="/v1.1/transfer-va/inquiry", help="request path")
    sign.add_argument("--method", default="POST")
    sign.add_argument("--timestamp", help="X-TIMESTAMP (default: now)")
    sign.add_argument("--body", default="-", help="JSON body file, or - for stdin")
    sign.add_argument(
        "--asymmetric",
        action="store_true",
        help="token-call signature: needs --private-key and --client-id",
    )
    sign.add_argument("--private-key", help="PEM file for --asymmetric")
    sign.add_argument("--client-id", help="client id for --asymmetric")
    sign.set_defaults(func=_sign)

    from .doku import register as register_doku_commands

    register_doku_commands(commands)
    from .reconcile import register as register_reconcile

    register_reconcile(commands)

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
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..web.app import create_app

    env = dict(os.environ)
    if args.demo:
        from ..resolvers.demo import demo_settings, ensure_demo_files

        files = ensure_demo_files(args.demo_dir)
        settings = demo_settings(files, env)
    else:
        settings = load_settings(args.config, env)
    http = settings.http
    if args.host or args.port is not None:
        from dataclasses import replace

        http = replace(
            http, host=args.host or http.host, port=http.port if args.port is None else args.port
        )
        settings = settings.replace(http=http)
    configure_logging(settings.log_level, _secrets(settings))
    app = create_app(settings)
    if settings.demo:
        _print_demo_banner(settings, args.demo_dir)
    config = uvicorn.Config(
        app,
        host=http.host,
        port=http.port,
        log_config=None,
        access_log=http.access_log,
        proxy_headers=http.proxy_headers,
        forwarded_allow_ips=http.forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
    return 0


def _secrets(settings: Settings) -> list[str]:
    return [settings.credentials.client_secret]


def _print_demo_banner(settings: Settings, demo_dir: str) -> None:
    base = f"http://{settings.http.host}:{settings.http.port}"
    print(
        f"doku-gateway demo on {base}\n"
        f"  credentials and keys: {Path(demo_dir).resolve()} (client id "
        f"{settings.credentials.client_id})\n"
        f"  token:   POST {base}{settings.paths.token}\n"
        f"  inquiry: POST {base}{settings.paths.inquiry}\n"
        f"  payment: POST {base}{settings.paths.payment}\n"
        f"  try:     .venv/bin/doku-gateway simulate --url {base} 8889900001234 8889911700001\n"
        f"           .venv/bin/doku-gateway simulate --url {base} pay 8889900001234\n"
        "  demo customerNo prefixes: 117 paid, 118 expired, 119 not found, 116 open amount,\n"
        "  anything else a closed bill of 25000.00",
        flush=True,
    )


def _check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    print(f"ok: {len(settings.resolvers)} resolver(s), cache {settings.cache.url.split('://')[0]}")
    return 0


def _journal_from_args(args: argparse.Namespace) -> Any:
    from ..payments.journal import create_journal

    if args.config:
        settings = load_settings(args.config, dict(os.environ))
        return create_journal(settings)
    from ..payments.journal.file import FileJournal

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


def _cache_purge(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..config import CacheSettings
    from ..metrics import Metrics
    from ..state.redis import RedisState

    env = dict(os.environ)
    cache = load_settings(args.config, env).cache if args.config else CacheSettings()
    url = args.redis_url or env.get("DOKU_GATEWAY_REDIS_URL") or cache.url
    if not url or url.startswith("memory:"):
        print(
            "doku-gateway: the in-memory cache lives inside each gateway process; "
            "purge needs a Redis URL (--redis-url or cache.url)",
            file=sys.stderr,
        )
        return 2
    cache = replace(cache, url=url, prefix=args.prefix if args.prefix is not None else cache.prefix)

    async def purge() -> int:
        state = RedisState.from_settings(cache, Metrics())
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


def _keygen(args: argparse.Namespace) -> int:
    from ..resolvers.demo import _write_private
    from ..snap.keys import generate_private_key, private_key_pem, public_key_pem

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    private, public = out / f"{args.name}_private.pem", out / f"{args.name}_public.pem"
    if not args.force and (private.exists() or public.exists()):
        print(f"doku-gateway: {private} or {public} exists (use --force)", file=sys.stderr)
        return 1
    key = generate_private_key()
    _write_private(private, private_key_pem(key))
    public.write_bytes(public_key_pem(key.public_key()))
    print(f"wrote {private} (keep secret) and {public} (upload this one to DOKU)")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from ..config import resolve_reference
    from ..snap.canonical import body_candidates, sha256_hex
    from ..snap.keys import load_private_key
    from ..snap.signature import sign_asymmetric, symmetric_string_to_sign
    from ..snap.timestamps import format_timestamp

    timestamp = args.timestamp or format_timestamp()
    env = dict(os.environ)
    if args.asymmetric:
        if not args.private_key or not args.client_id:
            print("doku-gateway: --asymmetric needs --private-key and --client-id", file=sys.stderr)
            return 2
        key = load_private_key(Path(args.private_key).read_bytes())
        print(f"string-to-sign: {args.client_id}|{timestamp}")
        print(f"X-TIMESTAMP:    {timestamp}")
        print(f"X-SIGNATURE:    {sign_asymmetric(key, args.client_id, timestamp)}")
        return 0
    secret = args.secret or env.get("DOKU_GATEWAY_DOKU_CLIENT_SECRET")
    if not secret:
        print("doku-gateway: give --secret or set DOKU_GATEWAY_DOKU_CLIENT_SECRET", file=sys.stderr)
        return 2
    secret = resolve_reference(secret, "--secret", env)
    raw = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
    try:
        document = json.loads(raw) if raw.strip() else None
    except ValueError:
        document = None
        print("note: the body is not JSON; only the raw form applies")
    from ..snap.signature import SymmetricSigner

    signer = SymmetricSigner.from_secret(secret)
    print(f"X-TIMESTAMP: {timestamp}")
    for name, body in body_candidates(raw, document):
        digest = sha256_hex(body)
        print(f"\n[{name}] body hashed: {body.decode('utf-8', 'replace')}")
        print(f"[{name}] sha256: {digest}")
        text = symmetric_string_to_sign(
            args.method.upper(), args.path, args.token, digest, timestamp
        )
        print(f"[{name}] string-to-sign: {text}")
        print(
            f"[{name}] X-SIGNATURE: "
            f"{signer.sign(args.method.upper(), args.path, args.token, body, timestamp)}"
        )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    return asyncio.run(_simulate_async(args))


async def _simulate_async(args: argparse.Namespace) -> int:
    import httpx

    from ..doku.simulator import DokuSimulator, inquiry_body, payment_body
    from ..snap.keys import load_private_key

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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
