"""The ``topup`` resolver: one reusable VA per customer account, credited exactly once.

The whole plugin in three steps, each one a query on the schema in ``schema/``:

* ``resolve``: the account's VA is an open bill (the payer keys the amount) within the
  account's own minimum and maximum, reusable, so it can be paid again and again;
* ``on_payment``: in one transaction, lock the account, record the credit under its
  ``paymentRequestId`` (the primary key turns every repeated delivery into a no-op) and, only
  when the row is new, add the amount to the balance;
* ``startup`` / ``health`` / ``shutdown``: the pool of :class:`doku_gateway_sql.Database`, which
  also bounds every wait and turns database failures into ``ResolverUnavailable``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from doku_gateway_sql import CONNECTION_OPTIONS, Database, DatabaseOptions, DatabaseResolver
from sqlalchemy import Numeric, String, bindparam, column, insert, table, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import Insert

from gateway import (
    Bill,
    BillStatus,
    Inquiry,
    Outcome,
    Payment,
    ResolverError,
)

__all__ = ["TopUp", "holder_name"]

_OPTIONS = (*CONNECTION_OPTIONS, "cache_ttl")

_ACCOUNT = text(
    "SELECT holder_name, min_topup, max_topup, email, phone "
    "FROM topup_accounts WHERE payment_code = :payment_code"
).bindparams(bindparam("payment_code", type_=String()))

# Locks the account for the rest of the transaction (see on_payment).
_LOCK_ACCOUNT = text(
    "SELECT payment_code FROM topup_accounts WHERE payment_code = :payment_code FOR UPDATE"
).bindparams(bindparam("payment_code", type_=String()))

_CREDIT_BALANCE = text(
    "UPDATE topup_accounts SET balance = balance + :amount WHERE payment_code = :payment_code"
).bindparams(bindparam("amount", type_=Numeric(18, 2)), bindparam("payment_code", type_=String()))

_CREDITS = table(
    "topup_credits",
    column("payment_request_id", String()),
    column("payment_code", String()),
    column("amount", Numeric(18, 2)),
    column("flags", String()),
    column("trx_id", String()),
    column("channel", String()),
)

# What DOKU accepts in a VA name; anything else is dropped from the holder's name.
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9 .\-/+,=_:'@%]")
_SPACES = re.compile(r" {2,}")


def _credit_statement(family: str) -> Insert:
    values = {c.name: bindparam(c.name, type_=c.type) for c in _CREDITS.columns}
    if family == "postgresql":
        return (
            pg_insert(_CREDITS)
            .values(values)
            .on_conflict_do_nothing(index_elements=["payment_request_id"])
        )
    return insert(_CREDITS).values(values)


def holder_name(name: str) -> str:
    """The holder's name as DOKU accepts it: accents dropped ("José" → "Jose"), other
    characters DOKU refuses removed, at most 255 characters."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _SPACES.sub(" ", _NOT_ALLOWED.sub("", plain)).strip()
    return cleaned[:255]


class TopUp(DatabaseResolver):
    """Top-up accounts in PostgreSQL or MySQL/MariaDB (``schema/*.sql`` of this package).

    ``options``: the connection options of ``doku-gateway-sql`` (``dsn`` required;
    ``pool_size``, ``connect_timeout``, ``acquire_timeout``, ``statement_timeout``,
    ``pre_ping``) and ``cache_ttl`` (seconds the gateway may reuse an account's answer,
    default 60).
    """

    kind = "topup"

    def __init__(self, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(_OPTIONS)})")
        self.database = Database(DatabaseOptions.from_options(options))
        cache_ttl = options.get("cache_ttl", 60)
        if (
            isinstance(cache_ttl, bool)
            or not isinstance(cache_ttl, int | float)
            or not math.isfinite(cache_ttl)
            or cache_ttl < 0
        ):
            raise ValueError("option 'cache_ttl' must be a non-negative number of seconds")
        self.cache_ttl = float(cache_ttl)
        self._credit = _credit_statement(self.database.family)

    async def resolve(self, inquiry: Inquiry) -> Outcome:
        async with self.database.connect() as connection:
            rows = await self.database.execute(
                connection, _ACCOUNT, {"payment_code": inquiry.payment_code}
            )
        if not rows:
            return BillStatus.NOT_FOUND
        account = rows[0]
        name = holder_name(str(account["holder_name"]))
        return Bill(
            name=name or inquiry.payment_code,
            amount=Decimal("0.00"),
            trx_type="O",
            min_amount=account["min_topup"],
            max_amount=account["max_topup"],
            email=account["email"],
            phone=account["phone"],
            # The same VA is paid again and again: DOKU must keep it open after a payment.
            reusable=True,
            # The answer does not change with the balance, so it may be reused a while.
            cache_ttl=self.cache_ttl,
        )

    async def on_payment(self, payment: Payment) -> None:
        """Credit ``payment.paid_amount`` to the account once per ``paymentRequestId``.

        Payments outside the account's limits (``payment.flags``) are credited too: the money
        has arrived; the flags are kept with the credit for review. A payment for an account
        that does not exist raises, so it is retried and, if it keeps failing, parked as a dead
        letter for someone to look at.
        """
        credit = {
            "payment_request_id": payment.payment_request_id,
            "payment_code": payment.payment_code,
            "amount": payment.paid_amount,
            "flags": ",".join(payment.flags),
            "trx_id": payment.trx_id,
            "channel": payment.channel,
        }
        async with self.database.transaction() as connection:
            # The account row is locked first, so payments to one account run one after the
            # other: a concurrent duplicate waits here, then finds its credit row and stops.
            # (Inserting first would deadlock on MySQL: the credit's foreign key share-locks
            # the account, and two such transactions then both wait to update it.)
            account = await self.database.execute(
                connection, _LOCK_ACCOUNT, {"payment_code": payment.payment_code}
            )
            if not account:
                raise ResolverError(f"no top-up account for payment code {payment.payment_code}")
            if not await self.database.insert_once(connection, self._credit, credit):
                return
            await self.database.execute(
                connection,
                _CREDIT_BALANCE,
                {"amount": payment.paid_amount, "payment_code": payment.payment_code},
            )
