"""``doku-gateway sign``: show string-to-sign, body hash and X-SIGNATURE for a request."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .._common import Subcommands, fail


def register(commands: Subcommands) -> None:
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


def _sign(args: argparse.Namespace) -> int:
    from ...config import resolve_reference
    from ...snap.canonical import body_candidates, sha256_hex
    from ...snap.keys import load_private_key
    from ...snap.signature import sign_asymmetric, symmetric_string_to_sign
    from ...snap.timestamps import format_timestamp

    timestamp = args.timestamp or format_timestamp()
    env = dict(os.environ)
    if args.asymmetric:
        if not args.private_key or not args.client_id:
            print("doku-gateway: --asymmetric needs --private-key and --client-id", file=sys.stderr)
            return 2
        try:
            key = load_private_key(Path(args.private_key).read_bytes())
        except (OSError, ValueError) as exc:
            return fail(f"cannot read the private key {args.private_key}: {exc}", 2)
        print(f"string-to-sign: {args.client_id}|{timestamp}")
        print(f"X-TIMESTAMP:    {timestamp}")
        print(f"X-SIGNATURE:    {sign_asymmetric(key, args.client_id, timestamp)}")
        return 0
    secret = args.secret or env.get("DOKU_GATEWAY_DOKU_CLIENT_SECRET")
    if not secret:
        print("doku-gateway: give --secret or set DOKU_GATEWAY_DOKU_CLIENT_SECRET", file=sys.stderr)
        return 2
    secret = resolve_reference(secret, "--secret", env)
    try:
        raw = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
    except OSError as exc:
        return fail(f"cannot read the body {args.body}: {exc}", 2)
    try:
        document = json.loads(raw) if raw.strip() else None
    except ValueError:
        document = None
        print("note: the body is not JSON; only the raw form applies")
    from ...snap.signature import SymmetricSigner

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
