"""The ``sql`` resolver: one parameterised query per lookup, optional exactly-once payments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import String
from sqlalchemy.types import TypeEngine

from gateway import BillStatus, Inquiry, Outcome, Payment, ResolverError

from ._bills import bill_from_row
from ._database import CONNECTION_OPTIONS, Database, DatabaseOptions, Statement
from ._lifecycle import DatabaseResolver
from ._payments import PAYMENT_PARAMETERS, PaymentRecorder

__all__ = ["QUERY_PARAMETERS", "SqlResolver", "zone_option"]

#: Parameters the ``query`` may use (``WHERE va_number = :payment_code``).
QUERY_PARAMETERS: dict[str, TypeEngine[Any]] = {
    name: String()
    for name in (
        "payment_code",
        "partner_service_id",
        "customer_no",
        "virtual_account_no",
        "inquiry_request_id",
        "channel",
    )
}
# A query naming none of these would give every VA the same bill.
_IDENTIFYING = ("payment_code", "customer_no", "virtual_account_no")
_OPTIONS = (
    *CONNECTION_OPTIONS,
    "query",
    "timezone",
    "payments_table",
    "payment_statement",
)


class SqlResolver(DatabaseResolver):
    """Looks each bill up with ``query`` in PostgreSQL or MySQL/MariaDB.

    ``options``: ``dsn`` and ``query`` (required); ``timezone`` (IANA name for timestamps
    without a zone and for the expiry shown to DOKU, default ``Asia/Jakarta``); ``pool_size``,
    ``connect_timeout``, ``acquire_timeout``, ``statement_timeout``, ``pre_ping`` (see
    :class:`Database`); ``payments_table`` and ``payment_statement`` for the payment hook.

    No row is "not found"; one row is mapped by :func:`bill_from_row`; more than one row, or a
    row that is not a valid bill, is a :class:`~gateway.ResolverError` (logged, ``5002401``).
    A database that is down, slow or failing raises :class:`~gateway.ResolverUnavailable`.
    """

    kind = "sql"

    def __init__(self, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(_OPTIONS)})")
        self.database = Database(DatabaseOptions.from_options(options))
        self.query = Statement.parse("query", options.get("query"), QUERY_PARAMETERS)
        if not set(self.query.names) & set(_IDENTIFYING):
            raise ValueError(
                "option 'query' must use :payment_code (or :customer_no / :virtual_account_no)"
            )
        self.zone = zone_option(options)
        table = options.get("payments_table")
        statement = options.get("payment_statement")
        self.recorder: PaymentRecorder | None = None
        if table is not None:
            if not isinstance(table, str):
                raise ValueError("option 'payments_table' must be a table name")
            parsed = None
            if statement is not None:
                parsed = Statement.parse("payment_statement", statement, PAYMENT_PARAMETERS)
            self.recorder = PaymentRecorder(self.database, table, parsed)
        elif statement is not None:
            raise ValueError(
                "option 'payment_statement' needs 'payments_table': the table is what makes "
                "the statement run once per payment"
            )

    async def resolve(self, inquiry: Inquiry) -> Outcome:
        values = {
            "payment_code": inquiry.payment_code,
            "partner_service_id": inquiry.partner_prefix,
            "customer_no": inquiry.customer_no,
            "virtual_account_no": inquiry.virtual_account_no,
            "inquiry_request_id": inquiry.inquiry_request_id,
            "channel": inquiry.channel,
        }
        async with self.database.connect() as connection:
            rows = await self.database.execute(
                connection, self.query.clause, self.query.bind(values)
            )
        if not rows:
            return BillStatus.NOT_FOUND
        if len(rows) > 1:
            raise ResolverError(
                f"sql resolver: query returned {len(rows)} rows for payment code "
                f"{inquiry.payment_code}; it must return at most one"
            )
        try:
            return bill_from_row(rows[0], self.zone)
        except ValueError as exc:
            raise ResolverError(
                f"sql resolver: payment code {inquiry.payment_code}: {exc}"
            ) from None

    async def on_payment(self, payment: Payment) -> None:
        """Record ``payment`` once in ``payments_table`` (a no-op without one)."""
        if self.recorder is not None:
            await self.recorder.record(payment)


def zone_option(options: Mapping[str, Any], default: str = "Asia/Jakarta") -> ZoneInfo:
    """The ``timezone`` option as a zone; ``ValueError`` when it names none."""
    name = options.get("timezone", default)
    try:
        if isinstance(name, str):
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    raise ValueError("option 'timezone' must be an IANA zone name such as Asia/Jakarta")
