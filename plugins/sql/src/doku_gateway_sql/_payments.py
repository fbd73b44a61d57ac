"""Recording payments exactly once: a row per ``paymentRequestId`` behind a unique key.

The gateway delivers each payment at least once (retries, redelivery after a crash, concurrent
duplicates from DOKU). The payments table's primary key turns that into exactly once: the
recording INSERT and the merchant's own statement run in one transaction, and the statement
runs only when the INSERT made a new row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Insert, Numeric, String, bindparam, column, insert, table
from sqlalchemy.dialects.mysql.base import MySQLDialect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.types import TypeEngine

from gateway import Payment

from ._database import Database, Family, Statement

__all__ = [
    "PAYMENT_PARAMETERS",
    "PaymentRecorder",
    "payment_parameters",
    "payments_table_sql",
    "recording_sql",
    "recording_statement",
]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}", re.ASCII)

#: Parameters a merchant's ``payment_statement`` may use (``:paid_amount`` …), with their types.
PAYMENT_PARAMETERS: dict[str, TypeEngine[Any]] = {
    "payment_request_id": String(),
    "payment_code": String(),
    "partner_service_id": String(),
    "customer_no": String(),
    "virtual_account_no": String(),
    "paid_amount": Numeric(18, 2),
    "currency": String(),
    "trx_id": String(),
    "trx_date_time": String(),
    "channel": String(),
    "flags": String(),
}

_RECORDED = (
    column("payment_request_id", String()),
    column("payment_code", String()),
    column("paid_amount", Numeric(18, 2)),
    column("currency", String()),
    column("trx_id", String()),
    column("trx_date_time", String()),
    column("channel", String()),
    column("flags", String()),
    column("notification", String()),
)


_PAYMENTS_TABLE = {
    "postgresql": """\
CREATE TABLE {table} (
    payment_request_id VARCHAR(128)   PRIMARY KEY,  -- the key that makes a duplicate a no-op
    payment_code       VARCHAR(28)    NOT NULL,     -- the VA number without spaces
    paid_amount        NUMERIC(18, 2) NOT NULL,
    currency           CHAR(3)        NOT NULL,
    trx_id             VARCHAR(64),
    trx_date_time      VARCHAR(40),                 -- as DOKU sent it
    channel            VARCHAR(30),
    flags              VARCHAR(255)   NOT NULL,     -- e.g. 'amount_differs', comma-separated
    notification       TEXT           NOT NULL,     -- DOKU's whole notification, JSON
    recorded_at        TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX {index} ON {table} (payment_code);
""",
    "mysql": """\
CREATE TABLE {table} (
    payment_request_id VARCHAR(128)   PRIMARY KEY,  -- the key that makes a duplicate a no-op
    payment_code       VARCHAR(28)    NOT NULL,     -- the VA number without spaces
    paid_amount        DECIMAL(18, 2) NOT NULL,
    currency           CHAR(3)        NOT NULL,
    trx_id             VARCHAR(64),
    trx_date_time      VARCHAR(40),                 -- as DOKU sent it
    channel            VARCHAR(30),
    flags              VARCHAR(255)   NOT NULL,     -- e.g. 'amount_differs', comma-separated
    notification       LONGTEXT       NOT NULL,     -- DOKU's whole notification, JSON
    recorded_at        TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    INDEX {index} (payment_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
""",
}


def payments_table_sql(table_name: str, family: Family) -> str:
    """The ``CREATE TABLE`` for a payments table named ``table_name`` (shown in the README)."""
    _, name = _check_table_name(table_name)
    # An index lives in its table's schema, so its name is never qualified.
    index = name + "_payment_code"
    return _PAYMENTS_TABLE[family].format(table=table_name, index=index)


def _check_table_name(table_name: str) -> tuple[str | None, str]:
    schema, _, name = table_name.rpartition(".")
    for part in (name, *((schema,) if schema else ())):
        if _IDENTIFIER.fullmatch(part) is None:
            raise ValueError(f"{table_name!r} is not a table name ([schema.]table, letters/_)")
    return schema or None, name


def payment_parameters(payment: Payment) -> dict[str, Any]:
    """The values of :data:`PAYMENT_PARAMETERS` for ``payment``; money stays a ``Decimal``."""
    return {
        "payment_request_id": payment.payment_request_id,
        "payment_code": payment.payment_code,
        "partner_service_id": payment.partner_service_id.strip(),
        "customer_no": payment.customer_no,
        "virtual_account_no": payment.virtual_account_no,
        "paid_amount": payment.paid_amount,
        "currency": payment.currency,
        "trx_id": payment.trx_id,
        "trx_date_time": payment.trx_date_time,
        "channel": payment.channel,
        "flags": ",".join(payment.flags),
    }


def recording_statement(table_name: str, family: Family) -> Insert:
    """The parameterised INSERT of one payment into ``table_name`` (``[schema.]table``)."""
    schema, name = _check_table_name(table_name)
    target = table(name, *(column(c.name, c.type) for c in _RECORDED), schema=schema)
    values = {c.name: bindparam(c.name, type_=c.type) for c in _RECORDED}
    if family == "postgresql":
        return (
            pg_insert(target)
            .values(values)
            .on_conflict_do_nothing(index_elements=["payment_request_id"])
        )
    return insert(target).values(values)


def recording_sql(table_name: str, family: Family) -> str:
    """The SQL text :func:`recording_statement` runs (``:name`` for each bound value)."""
    dialect = (
        PGDialect(paramstyle="named")  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
        if family == "postgresql"
        else MySQLDialect(paramstyle="named")
    )
    sql = str(recording_statement(table_name, family).compile(dialect=dialect))
    return sql.replace(") VALUES (", ")\nVALUES (").replace(" ON CONFLICT", "\nON CONFLICT")


class PaymentRecorder:
    """Records each payment once in ``table_name``; then runs ``statement`` for a new one."""

    def __init__(self, database: Database, table_name: str, statement: Statement | None) -> None:
        self.database = database
        self.table_name = table_name
        self.statement = statement
        self._insert = recording_statement(table_name, database.family)

    async def record(self, payment: Payment) -> bool:
        """True when ``payment`` was new (and recorded now); False for a duplicate (no-op)."""
        parameters = payment_parameters(payment)
        row = {
            **{key: parameters[key] for key in _ROW_PARAMETERS},
            "notification": json.dumps(
                payment.body, default=_jsonable, ensure_ascii=False, separators=(",", ":")
            ),
        }
        async with self.database.transaction() as connection:
            if not await self.database.insert_once(connection, self._insert, row):
                return False
            if self.statement is not None:
                await self.database.execute(
                    connection, self.statement.clause, self.statement.bind(parameters)
                )
        return True


_ROW_PARAMETERS = tuple(c.name for c in _RECORDED if c.name != "notification")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
