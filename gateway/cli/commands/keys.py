"""``doku-gateway keygen``: make an RSA-2048 key pair for SNAP signatures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._common import Subcommands


def register(commands: Subcommands) -> None:
    keygen = commands.add_parser("keygen", help="generate an RSA-2048 key pair (PEM)")
    keygen.add_argument("--out", default=".", help="directory (default: current)")
    keygen.add_argument("--name", default="merchant", help="file name stem (default merchant)")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    keygen.set_defaults(func=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    from ...resolvers.demo import _write_private
    from ...snap.keys import generate_private_key, private_key_pem, public_key_pem

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    private, public = out / f"{args.name}_private.pem", out / f"{args.name}_public.pem"
    if not args.force and (private.exists() or public.exists()):
        print(f"doku-gateway: {private} or {public} exists (use --force)", file=sys.stderr)
        return 1
    key = generate_private_key()
    _write_private(private, private_key_pem(key))
    public.write_bytes(public_key_pem(key.public_key()))
    print(f"wrote {private} (keep secret) and {public}")
    if args.name == "doku":
        # A stand-in for DOKU's own pair (tests, simulate): DOKU never receives either half.
        print(
            f"  this pair plays DOKU: set doku.public_key to {public}; sign as DOKU with "
            f"simulate --doku-private-key {private}"
        )
    else:
        print(f"  set merchant.private_key to {private}; upload {public} to DOKU's dashboard")
    return 0
