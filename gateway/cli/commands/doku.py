"""``doku-gateway check-status`` and ``doku-gateway va create|update|delete``: call DOKU's API.

Each command loads the settings (``--config``, environment), builds a :class:`DokuClient`, prints
DOKU's answer as JSON and exits 0 when DOKU accepted the call, 1 when DOKU refused it or could not
be reached, 2 when the request or the configuration is invalid (nothing is sent then).
A ``--partner-service-id`` given unpadded (``88899``) is left-padded to DOKU's 8 characters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ...config import Settings
from ...doku.client import DokuClient
from ...exceptions import ConfigError, DokuError
from ...snap.errors import SnapError
from ...snap.va import (
    CheckStatusRequest,
    CreateVaRequest,
    DeleteVaRequest,
    UpdateVaRequest,
    pad_partner_service_id,
)
from .._common import Subcommands, load, with_base_url

__all__ = ["register"]

_Call = Callable[[DokuClient], Awaitable[Any]]


def register(commands: Subcommands) -> None:
    """Add ``check-status`` and ``va create|update|delete`` to the CLI's subcommands."""
    status = commands.add_parser("check-status", help="ask DOKU whether a VA was paid")
    _common(status)
    status.add_argument("--inquiry-request-id")
    status.add_argument("--payment-request-id")
    status.set_defaults(func=_check_status)

    va = commands.add_parser("va", help="create, update or delete a VA at DOKU (DGPC/MGPC)")
    actions = va.add_subparsers(dest="va_command", required=True)

    create = actions.add_parser("create", help="register a VA at DOKU")
    _common(create)
    _details(create, required=True)
    create.add_argument("--reusable", action="store_true", help="the VA may be paid repeatedly")
    create.set_defaults(func=_create)

    update = actions.add_parser("update", help="change a VA registered at DOKU")
    _common(update)
    _details(update, required=False)
    update.add_argument("--status", choices=("ACTIVE", "INACTIVE"))
    update.set_defaults(func=_update)

    delete = actions.add_parser("delete", help="remove a VA registered at DOKU")
    _common(delete)
    delete.add_argument("--trx-id", required=True)
    delete.add_argument("--channel", required=True, help="e.g. VIRTUAL_ACCOUNT_BRI")
    delete.set_defaults(func=_delete)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--base-url", help="DOKU's base URL (default: client.base_url)")
    parser.add_argument("--partner-service-id", required=True, help="BIN/prefix, e.g. 88899")
    parser.add_argument("--customer-no", required=True)
    parser.add_argument(
        "--va", help="virtualAccountNo (default: padded partnerServiceId + customerNo)"
    )


def _details(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--trx-id", required=True, help="the merchant's invoice id")
    parser.add_argument("--channel", required=True, help="e.g. VIRTUAL_ACCOUNT_BRI")
    parser.add_argument("--name", required=required, help="virtualAccountName")
    parser.add_argument("--amount", required=required, help="e.g. 25000 or 25000.00")
    parser.add_argument("--trx-type", choices=("C", "O", "V"), default="C" if required else None)
    parser.add_argument("--email")
    parser.add_argument("--phone")
    parser.add_argument("--expires", help="ISO-8601 with offset, e.g. 2025-08-31T09:54:04+07:00")
    parser.add_argument("--min-amount")
    parser.add_argument("--max-amount")


def _check_status(args: argparse.Namespace) -> int:
    def build() -> _Call:
        partner, customer, va_no = _va(args)
        request = CheckStatusRequest(
            partner,
            customer,
            va_no,
            inquiry_request_id=args.inquiry_request_id,
            payment_request_id=args.payment_request_id,
        )
        return lambda client: client.check_status(request)

    return _run(args, build)


def _create(args: argparse.Namespace) -> int:
    def build() -> _Call:
        partner, customer, va_no = _va(args)
        request = CreateVaRequest(
            partner,
            customer,
            va_no,
            name=args.name,
            trx_id=args.trx_id,
            amount=_decimal(args.amount, "--amount"),
            channel=args.channel,
            trx_type=args.trx_type,
            email=args.email,
            phone=args.phone,
            expires_at=_moment(args.expires),
            reusable=args.reusable,
            min_amount=_optional_decimal(args.min_amount, "--min-amount"),
            max_amount=_optional_decimal(args.max_amount, "--max-amount"),
        )
        return lambda client: client.create_va(request)

    return _run(args, build)


def _update(args: argparse.Namespace) -> int:
    def build() -> _Call:
        partner, customer, va_no = _va(args)
        request = UpdateVaRequest(
            partner,
            customer,
            va_no,
            trx_id=args.trx_id,
            channel=args.channel,
            name=args.name,
            email=args.email,
            phone=args.phone,
            amount=_optional_decimal(args.amount, "--amount"),
            trx_type=args.trx_type,
            expires_at=_moment(args.expires),
            status=args.status,
            min_amount=_optional_decimal(args.min_amount, "--min-amount"),
            max_amount=_optional_decimal(args.max_amount, "--max-amount"),
        )
        return lambda client: client.update_va(request)

    return _run(args, build)


def _delete(args: argparse.Namespace) -> int:
    def build() -> _Call:
        partner, customer, va_no = _va(args)
        request = DeleteVaRequest(partner, customer, va_no, args.trx_id, args.channel)
        return lambda client: client.delete_va(request)

    return _run(args, build)


def _run(args: argparse.Namespace, build: Callable[[], _Call]) -> int:
    """Validate, then call DOKU: 0 accepted, 1 refused or unreachable, 2 invalid input."""
    try:
        settings = _settings(args)
        call = build()
    except (ConfigError, SnapError, ValueError) as exc:
        print(f"doku-gateway: {exc}", file=sys.stderr)
        return 2

    async def main() -> Any:
        async with DokuClient.from_settings(settings) as client:
            return await call(client)

    try:
        result = asyncio.run(main())
    except DokuError as exc:
        if exc.body is not None:
            _print(exc.body)
        print(f"doku-gateway: {exc.message}", file=sys.stderr)
        return 1
    _print(result.body)
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    return with_base_url(load(args.config), args.base_url)


def _va(args: argparse.Namespace) -> tuple[str, str, str]:
    partner = args.partner_service_id
    # Leading spaces are awkward on a command line; a bare prefix is padded like DOKU wants.
    if partner.strip().isdigit() and len(partner) < 8:
        partner = pad_partner_service_id(partner)
    va_no = args.va if args.va is not None else partner + args.customer_no
    return partner, args.customer_no, va_no


def _decimal(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{option}: {text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{option}: {text!r} is not a number")
    return value


def _optional_decimal(text: str | None, option: str) -> Decimal | None:
    return None if text is None else _decimal(text, option)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--expires: {text!r} is not an ISO-8601 date-time") from None


def _print(body: Mapping[str, Any]) -> None:
    print(json.dumps(dict(body), ensure_ascii=False, indent=2))
