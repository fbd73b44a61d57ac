"""The ``sql`` resolver plugin against a real PostgreSQL and a real MariaDB (see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from doku_gateway_sql import (
    SqlResolver,
    bill_from_row,
    payments_table_sql,
    recording_sql,
)
from sqlalchemy import event, text

from gateway import (
    Bill,
    BillStatus,
    FreeText,
    Payment,
    Resolver,
    ResolverError,
    ResolverUnavailable,
)
from gateway.testing import (
    Expectation,
    ResolverContract,
    make_context,
    make_inquiry,
    make_payment,
)

from ._databases import Database, free_port

README = Path(__file__).resolve().parents[2] / "plugins" / "sql" / "README.md"
JAKARTA = ZoneInfo("Asia/Jakarta")

BILLS_TABLE = {
    "postgresql": """
        CREATE TABLE bills (
            va VARCHAR(28) PRIMARY KEY,
            customer VARCHAR(255),
            total NUMERIC(18, 2),
            kind CHAR(1),
            low NUMERIC(18, 2),
            high NUMERIC(18, 2),
            due TIMESTAMP WITH TIME ZONE,
            due_local TIMESTAMP,
            due_text VARCHAR(40),
            is_paid BOOLEAN NOT NULL DEFAULT FALSE,
            is_expired BOOLEAN NOT NULL DEFAULT FALSE,
            reusable BOOLEAN,
            invoice VARCHAR(64),
            email VARCHAR(255),
            phone VARCHAR(30),
            note_en VARCHAR(64),
            note_id VARCHAR(64),
            currency CHAR(3),
            ttl INTEGER,
            float_total DOUBLE PRECISION,
            whole_total BIGINT,
            paid_total NUMERIC(18, 2) NOT NULL DEFAULT 0,
            payments INTEGER NOT NULL DEFAULT 0
        )""",
    "mariadb": """
        CREATE TABLE bills (
            va VARCHAR(28) PRIMARY KEY,
            customer VARCHAR(255),
            total DECIMAL(18, 2),
            kind CHAR(1),
            low DECIMAL(18, 2),
            high DECIMAL(18, 2),
            due TIMESTAMP NULL,
            due_local DATETIME,
            due_text VARCHAR(40),
            is_paid BOOLEAN NOT NULL DEFAULT FALSE,
            is_expired BOOLEAN NOT NULL DEFAULT FALSE,
            reusable BOOLEAN,
            invoice VARCHAR(64),
            email VARCHAR(255),
            phone VARCHAR(30),
            note_en VARCHAR(64),
            note_id VARCHAR(64),
            currency CHAR(3),
            ttl INTEGER,
            float_total DOUBLE,
            whole_total BIGINT,
            paid_total DECIMAL(18, 2) NOT NULL DEFAULT 0,
            payments INTEGER NOT NULL DEFAULT 0
        )""",
}

QUERY = """
    SELECT customer AS name, total AS amount, kind AS trx_type, low AS min_amount,
           high AS max_amount, due_local AS expires_at, is_paid AS paid, is_expired AS expired,
           reusable, invoice AS trx_id, email, phone, note_en AS free_text_english,
           note_id AS free_text_indonesia, currency, ttl AS cache_ttl
    FROM bills WHERE va = :payment_code
"""

CLOSED = "8889900000001"
OPEN = "8889900000002"
LIMITED = "8889900000003"
PAID = "8889900000004"
EXPIRED = "8889900000005"
REUSABLE = "8889900000006"
MISSING = "8889900009999"

ROWS: list[dict[str, Any]] = [
    {
        "va": CLOSED,
        "customer": "Budi Santoso",
        "total": Decimal("150000.50"),
        "due_local": datetime(2030, 12, 31, 23, 59, 59),
        "invoice": "INV-2030-0001",
        "email": "budi@example.com",
        "phone": "6281234567890",
        "note_en": "Thank you",
        "note_id": "Terima kasih",
        "currency": "IDR",
        "ttl": 30,
        "reusable": False,
    },
    {"va": OPEN, "customer": "Donation", "kind": "O", "low": Decimal("10000.00")},
    {
        "va": LIMITED,
        "customer": "Installment",
        "kind": "V",
        "total": Decimal("50000.00"),
        "low": Decimal("25000.00"),
        "high": Decimal("75000.00"),
    },
    {"va": PAID, "customer": "Paid Already", "total": Decimal("1.00"), "is_paid": True},
    {"va": EXPIRED, "customer": "Too Late", "total": Decimal("1.00"), "is_expired": True},
    {
        "va": REUSABLE,
        "customer": "Top Up",
        "kind": "O",
        "low": Decimal("10000.00"),
        "high": Decimal("5000000.00"),
        "reusable": True,
    },
]


async def seed(database: Database, *rows: Mapping[str, Any]) -> None:
    await database.run(BILLS_TABLE[database.kind])
    for row in rows:
        columns = ", ".join(row)
        placeholders = ", ".join(f":{column}" for column in row)
        # Column names come from this module's constants; the values are bound.
        insert = f"INSERT INTO bills ({columns}) VALUES ({placeholders})"  # noqa: S608
        await database.run(insert, **row)


async def with_payments_table(database: Database) -> None:
    if database.kind == "postgresql":
        await database.script(payments_table_sql("doku_payments", "postgresql"))
    else:
        await database.script(payments_table_sql("doku_payments", "mysql"))


def options(database: Database, **extra: Any) -> dict[str, Any]:
    return {"dsn": database.dsn, "query": QUERY, "statement_timeout": 1.0, **extra}


@pytest.fixture
async def seeded(database: Database) -> Database:
    await seed(database, *ROWS)
    return database


@pytest.fixture
async def resolver(seeded: Database) -> AsyncIterator[SqlResolver]:
    resolver = SqlResolver(options(seeded))
    await resolver.startup(make_context("sql"))
    yield resolver
    await resolver.shutdown()


async def resolve(resolver: Resolver, va: str) -> Any:
    return await resolver.resolve(make_inquiry(va))


# -- column mapping ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_closed_bill_maps_every_column(resolver: SqlResolver) -> None:
    bill = await resolve(resolver, CLOSED)
    assert bill == Bill(
        name="Budi Santoso",
        amount=Decimal("150000.50"),
        trx_type="C",
        expires_at=datetime(2030, 12, 31, 23, 59, 59, tzinfo=JAKARTA),
        trx_id="INV-2030-0001",
        email="budi@example.com",
        phone="6281234567890",
        free_text=(FreeText("Thank you", "Terima kasih"),),
        reusable=False,
        currency="IDR",
        cache_ttl=30.0,
    )
    assert type(bill.amount) is Decimal


@pytest.mark.anyio
async def test_open_and_limit_bills(resolver: SqlResolver) -> None:
    open_bill = await resolve(resolver, OPEN)
    assert isinstance(open_bill, Bill)
    assert (open_bill.trx_type, open_bill.amount) == ("O", Decimal("0.00"))
    assert (open_bill.min_amount, open_bill.max_amount) == (Decimal("10000.00"), None)
    limited = await resolve(resolver, LIMITED)
    assert isinstance(limited, Bill)
    assert (limited.trx_type, limited.amount, limited.min_amount, limited.max_amount) == (
        "V",
        Decimal("50000.00"),
        Decimal("25000.00"),
        Decimal("75000.00"),
    )
    reusable = await resolve(resolver, REUSABLE)
    assert isinstance(reusable, Bill) and reusable.reusable is True
    assert reusable.max_amount == Decimal("5000000.00")


@pytest.mark.anyio
async def test_flags_and_missing_rows(resolver: SqlResolver) -> None:
    assert await resolve(resolver, PAID) is BillStatus.ALREADY_PAID
    assert await resolve(resolver, EXPIRED) is BillStatus.EXPIRED
    assert await resolve(resolver, MISSING) is BillStatus.NOT_FOUND


@pytest.mark.anyio
async def test_other_parameters_and_integer_money(database: Database) -> None:
    await seed(database, {"va": CLOSED, "customer": "Whole Rupiah", "whole_total": 25000})
    query = (
        "SELECT customer AS name, whole_total AS amount FROM bills "
        "WHERE va = CONCAT(:partner_service_id, :customer_no)"
    )
    resolver = SqlResolver(options(database, query=query))
    await resolver.startup(make_context())
    try:
        bill = await resolve(resolver, CLOSED)
    finally:
        await resolver.shutdown()
    assert isinstance(bill, Bill) and bill.amount == Decimal(25000)
    assert type(bill.amount) is Decimal


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Asia/Jakarta", datetime(2030, 6, 1, 12, 0, tzinfo=JAKARTA)),
        ("Asia/Jayapura", datetime(2030, 6, 1, 12, 0, tzinfo=ZoneInfo("Asia/Jayapura"))),
        ("UTC", datetime(2030, 6, 1, 12, 0, tzinfo=ZoneInfo("UTC"))),
    ],
)
async def test_naive_expiry_is_read_in_the_configured_zone(
    database: Database, zone: str, expected: datetime
) -> None:
    await seed(
        database,
        {"va": CLOSED, "customer": "Budi", "total": 1, "due_local": datetime(2030, 6, 1, 12, 0)},
    )
    query = (
        "SELECT customer AS name, total AS amount, due_local AS expires_at "
        "FROM bills WHERE va = :payment_code"
    )
    resolver = SqlResolver(options(database, query=query, timezone=zone))
    await resolver.startup(make_context())
    try:
        bill = await resolve(resolver, CLOSED)
    finally:
        await resolver.shutdown()
    assert isinstance(bill, Bill) and bill.expires_at is not None
    assert bill.expires_at == expected
    assert bill.expires_at.utcoffset() == expected.utcoffset()


@pytest.mark.anyio
async def test_expiry_with_a_zone_is_kept_as_an_instant(database: Database) -> None:
    # 2030-06-01 12:00 in Tokyo (+09:00) is 10:00 in Jakarta (+07:00).
    tokyo = datetime(2030, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=9)))
    row: dict[str, Any] = {"va": CLOSED, "customer": "Budi", "total": 1}
    row["due_text"] = tokyo.isoformat()
    if database.kind == "postgresql":
        row["due"] = tokyo  # TIMESTAMP WITH TIME ZONE
    await seed(database, row)
    columns = ["due_text"] + (["due"] if database.kind == "postgresql" else [])
    for column in columns:
        query = (
            f"SELECT customer AS name, total AS amount, {column} AS expires_at "  # noqa: S608
            "FROM bills WHERE va = :payment_code"
        )
        resolver = SqlResolver(options(database, query=query))
        await resolver.startup(make_context())
        try:
            bill = await resolve(resolver, CLOSED)
        finally:
            await resolver.shutdown()
        assert isinstance(bill, Bill) and bill.expires_at is not None
        assert bill.expires_at == tokyo, column
        # Shown to DOKU in the configured zone (WIB by default).
        assert bill.expires_at.isoformat() == "2030-06-01T10:00:00+07:00", column


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("select", "match"),
    [
        ("customer AS name, float_total AS amount", "floating-point"),
        ("customer AS name, total AS amount, invoice AS invoice_no", "'invoice_no' is not a bill"),
        ("total AS amount", "'name' is required"),
        ("customer AS name", "'amount' is required for a closed bill"),
        ("customer AS name, total AS amount, 'X' AS trx_type", "'trx_type' must be"),
        ("customer AS name, total AS amount, low AS min_amount", "only allowed with trx_type"),
        ("customer AS name, total AS amount, ttl AS paid", "'paid' must be a boolean"),
        ("customer AS name, total AS amount, 'USD' AS currency", "currency must be IDR"),
        ("customer AS name, total AS amount, 'soon' AS expires_at", "ISO-8601"),
    ],
)
async def test_rows_that_are_not_bills_are_errors_naming_the_column(
    database: Database, select: str, match: str
) -> None:
    await seed(
        database,
        {
            "va": CLOSED,
            "customer": "Budi",
            "total": Decimal("1.00"),
            "float_total": 1.5,
            "low": Decimal("1.00"),
            "ttl": 7,
        },
    )
    resolver = SqlResolver(
        options(database, query=f"SELECT {select} FROM bills WHERE va = :payment_code")  # noqa: S608
    )
    await resolver.startup(make_context())
    try:
        with pytest.raises(ResolverError, match=match) as raised:
            await resolve(resolver, CLOSED)
    finally:
        await resolver.shutdown()
    assert not isinstance(raised.value, ResolverUnavailable)
    assert CLOSED in str(raised.value)


@pytest.mark.parametrize(
    ("row", "field", "value"),
    [
        (
            {"free_text_indonesia": "Terima kasih"},
            "free_text",
            (FreeText("Terima kasih", "Terima kasih"),),
        ),
        ({"amount": Decimal("150000.5000")}, "amount", Decimal("150000.5")),
        ({"amount": "99.9"}, "amount", Decimal("99.9")),
        ({"reusable": 1}, "reusable", True),
        ({"reusable": None}, "reusable", None),
        ({"cache_ttl": Decimal("2.5")}, "cache_ttl", 2.5),
        ({"trx_type": None}, "trx_type", "C"),
    ],
)
def test_row_values_as_drivers_return_them(row: dict[str, Any], field: str, value: Any) -> None:
    bill = bill_from_row({"name": "Budi", "amount": Decimal("1.00"), **row}, JAKARTA)
    assert isinstance(bill, Bill) and getattr(bill, field) == value


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"amount": Decimal("150000.005")}, "more than two decimals"),
        ({"amount": "1e5"}, "'amount' must be NUMERIC"),
        ({"amount": True}, "not a boolean"),
        ({"expires_at": date(2030, 1, 1)}, "a date without a time"),
        ({"expired": 2}, "'expired' must be a boolean"),
        ({"cache_ttl": -1}, "non-negative"),
        ({"name": 42}, "'name' must be text"),
    ],
)
def test_row_values_that_cannot_be_bills(row: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bill_from_row({"name": "Budi", "amount": Decimal("1.00"), **row}, JAKARTA)


@pytest.mark.anyio
async def test_more_than_one_row_is_an_error(database: Database) -> None:
    await seed(database, *ROWS)
    resolver = SqlResolver(
        options(
            database,
            query="SELECT customer AS name, total AS amount FROM bills WHERE va <> :payment_code",
        )
    )
    await resolver.startup(make_context())
    try:
        with pytest.raises(ResolverError, match="rows for payment code"):
            await resolve(resolver, MISSING)
    finally:
        await resolver.shutdown()


# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"dsn": None}, "'dsn' is required"),
        ({"dsn": "sqlite:///bills.db"}, "unsupported scheme 'sqlite'"),
        ({"dsn": "mysql+pymysql://u@h/db"}, "unsupported scheme"),
        ({"query": None}, "'query' must be an SQL statement"),
        ({"query": "SELECT 1 AS name WHERE :va = 1"}, "uses :va"),
        # A value formatted into the SQL instead of bound is refused: no parameter is named.
        ({"query": "SELECT name FROM bills WHERE va = '{payment_code}'"}, "must use :payment_code"),
        ({"timezone": "Mars/Olympus"}, "IANA zone"),
        ({"statement_timeout": 0}, "'statement_timeout' must be a positive"),
        ({"pool_size": 0}, "'pool_size' must be a positive integer"),
        ({"pre_ping": "yes"}, "'pre_ping' must be true or false"),
        ({"payment_statement": "UPDATE bills SET paid = TRUE"}, "needs 'payments_table'"),
        ({"payments_table": "payments; DROP TABLE bills"}, "not a table name"),
        (
            {"payments_table": "p", "payment_statement": "UPDATE b SET x = :amount"},
            "uses :amount",
        ),
        ({"querry": "SELECT 1"}, "unknown option 'querry'"),
    ],
)
def test_options_are_checked(changes: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {"dsn": "postgresql://u:p@127.0.0.1/db", "query": QUERY}
    given = {key: value for key, value in {**base, **changes}.items() if value is not None}
    with pytest.raises(ValueError, match=match):
        SqlResolver(given)
    # check-config's hook reports the same problem without building a resolver.
    (problem,) = SqlResolver.check(given)
    assert re.search(match, problem)
    assert SqlResolver.check(base) == []


def test_dsn_picks_an_async_driver_and_hides_the_password() -> None:
    postgres = SqlResolver({"dsn": "postgres://u:secret@db/billing", "query": QUERY})
    mysql = SqlResolver({"dsn": "mysql://u:secret@db/billing", "query": QUERY})
    mariadb = SqlResolver({"dsn": "mariadb://u:secret@db/billing", "query": QUERY})
    assert postgres.database.options.url.drivername == "postgresql+asyncpg"
    assert mysql.database.options.url.drivername == "mysql+aiomysql"
    assert mariadb.database.options.url.drivername == "mariadb+aiomysql"
    assert (postgres.database.family, mysql.database.family) == ("postgresql", "mysql")
    assert "secret" not in postgres.database.options.safe_dsn


def test_is_found_by_its_entry_point() -> None:
    (entry,) = entry_points(group="doku_gateway.resolvers", name="sql")
    assert entry.load() is SqlResolver


# -- payments --------------------------------------------------------------------------------


PAYMENT_STATEMENT = (
    "UPDATE bills SET is_paid = TRUE, paid_total = paid_total + :paid_amount, "
    "payments = payments + 1 WHERE va = :payment_code"
)


@pytest.fixture
async def paying(seeded: Database) -> AsyncIterator[SqlResolver]:
    await with_payments_table(seeded)
    resolver = SqlResolver(
        options(seeded, payments_table="doku_payments", payment_statement=PAYMENT_STATEMENT)
    )
    await resolver.startup(make_context())
    yield resolver
    await resolver.shutdown()


async def bill_state(database: Database, va: str) -> dict[str, object]:
    (row,) = await database.run(
        "SELECT is_paid, paid_total, payments FROM bills WHERE va = :va", va=va
    )
    return row


async def recorded(database: Database) -> list[dict[str, object]]:
    return await database.run(
        "SELECT payment_request_id, payment_code, paid_amount, currency, trx_id, trx_date_time,"
        " channel, flags, notification FROM doku_payments ORDER BY payment_request_id"
    )


@pytest.mark.anyio
async def test_payment_is_recorded_once_with_the_statement(
    paying: SqlResolver, seeded: Database
) -> None:
    bill = await resolve(paying, CLOSED)
    payment = make_payment(CLOSED, "150000.50", bill=bill, trx_id="INV-2030-0001")
    await paying.on_payment(payment)
    await paying.on_payment(payment)
    rows = await recorded(seeded)
    assert len(rows) == 1
    row = rows[0]
    assert row["payment_request_id"] == payment.payment_request_id
    assert (row["payment_code"], row["paid_amount"], row["currency"]) == (
        CLOSED,
        Decimal("150000.50"),
        "IDR",
    )
    assert type(row["paid_amount"]) is Decimal
    assert (row["trx_id"], row["trx_date_time"], row["flags"]) == (
        "INV-2030-0001",
        payment.trx_date_time,
        "",
    )
    assert json.loads(str(row["notification"]))["paymentRequestId"] == payment.payment_request_id
    state = await bill_state(seeded, CLOSED)
    assert (bool(state["is_paid"]), state["paid_total"], state["payments"]) == (
        True,
        Decimal("150000.50"),
        1,
    )
    # The statement marked the bill paid, so the next inquiry says so.
    assert await resolve(paying, CLOSED) is BillStatus.ALREADY_PAID


@pytest.mark.anyio
async def test_flagged_payment_is_recorded_with_its_flags(
    paying: SqlResolver, seeded: Database
) -> None:
    bill = await resolve(paying, CLOSED)
    await paying.on_payment(make_payment(CLOSED, "1000.00", bill=bill))
    (row,) = await recorded(seeded)
    assert row["flags"] == "amount_differs"
    assert row["paid_amount"] == Decimal("1000.00")


@pytest.mark.anyio
async def test_concurrent_duplicates_make_one_row(paying: SqlResolver, seeded: Database) -> None:
    payment = make_payment(OPEN, "20000.00")
    # Each delivery on its own resolver: as concurrent deliveries from several gateway pods.
    others = [
        SqlResolver(
            options(seeded, payments_table="doku_payments", payment_statement=PAYMENT_STATEMENT)
        )
        for _ in range(3)
    ]
    for other in others:
        await other.startup(make_context())
    try:
        deliveries = [paying.on_payment(payment) for _ in range(4)]
        deliveries += [other.on_payment(payment) for other in others for _ in range(2)]
        await asyncio.gather(*deliveries)
    finally:
        for other in others:
            await other.shutdown()
    assert len(await recorded(seeded)) == 1
    state = await bill_state(seeded, OPEN)
    assert (state["paid_total"], state["payments"]) == (Decimal("20000.00"), 1)


@pytest.mark.anyio
async def test_failing_statement_rolls_the_record_back(seeded: Database) -> None:
    await with_payments_table(seeded)
    broken = SqlResolver(
        options(
            seeded,
            payments_table="doku_payments",
            payment_statement="UPDATE bills SET no_such_column = 1 WHERE va = :payment_code",
        )
    )
    payment = make_payment(CLOSED, "150000.50")
    await broken.startup(make_context())
    try:
        with pytest.raises(ResolverUnavailable):
            await broken.on_payment(payment)
    finally:
        await broken.shutdown()
    # Nothing was recorded, so the redelivery (after the fix) is not mistaken for a duplicate.
    assert await recorded(seeded) == []
    fixed = SqlResolver(
        options(seeded, payments_table="doku_payments", payment_statement=PAYMENT_STATEMENT)
    )
    await fixed.startup(make_context())
    try:
        await fixed.on_payment(payment)
    finally:
        await fixed.shutdown()
    assert len(await recorded(seeded)) == 1
    assert (await bill_state(seeded, CLOSED))["payments"] == 1


@pytest.mark.anyio
async def test_without_a_payments_table_the_hook_does_nothing(resolver: SqlResolver) -> None:
    await resolver.on_payment(make_payment(CLOSED, "150000.50"))
    assert await resolve(resolver, CLOSED) != BillStatus.ALREADY_PAID


def test_readme_shows_the_sql_that_runs() -> None:
    readme = README.read_text(encoding="utf-8")
    for family in ("postgresql", "mysql"):
        assert recording_sql("doku_payments", family) in readme
        assert payments_table_sql("doku_payments", family) in readme


# -- failures --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_database_stopped_mid_run_is_unavailable_then_recovers(
    paying: SqlResolver, seeded: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="doku_gateway.resolver")
    assert isinstance(await resolve(paying, CLOSED), Bill)
    assert await paying.health() is True
    await asyncio.to_thread(seeded.server.stop)
    try:
        started = time.monotonic()
        with pytest.raises(ResolverUnavailable):
            await resolve(paying, CLOSED)
        with pytest.raises(ResolverUnavailable):
            await paying.on_payment(make_payment(CLOSED, "150000.50"))
        assert await paying.health() is False
        assert await paying.health() is False
        assert time.monotonic() - started < 5
    finally:
        await asyncio.to_thread(seeded.server.start)
    # The pool replaces its broken connections: no restart of the gateway is needed.
    assert isinstance(await resolve(paying, CLOSED), Bill)
    assert await paying.health() is True
    await paying.on_payment(make_payment(CLOSED, "150000.50"))
    assert len(await recorded(seeded)) == 1
    # /readyz probes often: the outage is logged once, and the recovery once.
    messages = [record.getMessage() for record in caplog.records]
    assert sum("is not answering" in message for message in messages) == 1
    assert sum("answering again" in message for message in messages) == 1


@pytest.mark.anyio
async def test_startup_with_the_database_down_still_starts(database: Database) -> None:
    resolver = SqlResolver(options(database))
    await asyncio.to_thread(database.server.stop)
    try:
        await resolver.startup(make_context())
        with pytest.raises(ResolverUnavailable):
            await resolve(resolver, CLOSED)
    finally:
        await asyncio.to_thread(database.server.start)
    await seed(database, *ROWS)
    try:
        assert isinstance(await resolve(resolver, CLOSED), Bill)
    finally:
        await resolver.shutdown()


def slow_query(database: Database, seconds: float) -> str:
    sleep = f"pg_sleep({seconds})" if database.kind == "postgresql" else f"SLEEP({seconds})"
    return (
        "SELECT customer AS name, total AS amount "  # noqa: S608
        f"FROM bills, (SELECT {sleep} AS s) AS pause WHERE va = :payment_code"
    )


@pytest.mark.anyio
async def test_statement_timeout_is_unavailable_and_the_pool_stays_usable(
    seeded: Database,
) -> None:
    slow = SqlResolver(
        options(seeded, query=slow_query(seeded, 5), statement_timeout=0.3, pool_size=1)
    )
    await slow.startup(make_context())
    try:
        started = time.monotonic()
        with pytest.raises(ResolverUnavailable):
            await resolve(slow, CLOSED)
        assert time.monotonic() - started < 2
        # The one pooled connection still works after the cancelled statement.
        assert await slow.health() is True
    finally:
        await slow.shutdown()


@pytest.mark.anyio
async def test_statement_limit_is_set_on_the_server(seeded: Database) -> None:
    # The server itself stops a statement nobody waits for any more.
    resolver = SqlResolver(options(seeded, statement_timeout=0.75))
    await resolver.startup(make_context())
    try:
        async with resolver.database.connect() as connection:
            if seeded.kind == "postgresql":
                show = "SELECT current_setting('statement_timeout') AS v"
            else:
                show = "SELECT @@session.max_statement_time AS v"
            (row,) = await resolver.database.execute(connection, text(show))
    finally:
        await resolver.shutdown()
    assert str(row["v"]) in ("750ms", "0.750000", "0.75")


@pytest.mark.anyio
async def test_waiting_for_a_busy_pool_is_bounded(seeded: Database) -> None:
    slow = SqlResolver(
        options(
            seeded,
            query=slow_query(seeded, 1),
            statement_timeout=3,
            pool_size=1,
            acquire_timeout=0.2,
        )
    )
    await slow.startup(make_context())
    try:
        engine = slow.database._engine
        assert engine is not None
        checked_out = asyncio.Event()
        event.listen(engine.sync_engine.pool, "checkout", lambda *_: checked_out.set())
        holder = asyncio.ensure_future(resolve(slow, CLOSED))
        # The slow query now holds the only connection.
        await asyncio.wait_for(checked_out.wait(), 5)
        started = time.monotonic()
        with pytest.raises(ResolverUnavailable, match=r"timed out|TimeoutError"):
            await resolve(slow, CLOSED)
        assert time.monotonic() - started < 1.0
        assert isinstance(await holder, Bill)
    finally:
        await slow.shutdown()


@pytest.mark.anyio
async def test_asyncmy_driver_when_named_in_the_dsn(mariadb_database: Database) -> None:
    database = mariadb_database
    await seed(database, *ROWS)
    await with_payments_table(database)
    dsn = database.dsn.replace("mysql://", "mysql+asyncmy://")
    resolver = SqlResolver(options(database, dsn=dsn, payments_table="doku_payments", pool_size=2))
    assert resolver.database.options.url.drivername == "mysql+asyncmy"
    slow = SqlResolver(
        options(database, dsn=dsn, query=slow_query(database, 5), statement_timeout=0.3)
    )
    await resolver.startup(make_context())
    await slow.startup(make_context())
    try:
        bill = await resolve(resolver, CLOSED)
        assert isinstance(bill, Bill) and bill.amount == Decimal("150000.50")
        payment = make_payment(CLOSED, "150000.50")
        await asyncio.gather(*(resolver.on_payment(payment) for _ in range(4)))
        assert len(await recorded(database)) == 1
        with pytest.raises(ResolverUnavailable):
            await resolve(slow, CLOSED)
        assert await slow.health() is True
    finally:
        await slow.shutdown()
        await resolver.shutdown()


# -- the contract ----------------------------------------------------------------------------


class TestSqlContract(ResolverContract):
    factory = SqlResolver
    samples: ClassVar[Mapping[str, Expectation]] = {
        CLOSED: Bill,
        OPEN: Bill,
        LIMITED: Bill,
        PAID: BillStatus.ALREADY_PAID,
        EXPIRED: BillStatus.EXPIRED,
        MISSING: BillStatus.NOT_FOUND,
    }
    timeout = 3.0

    @pytest.fixture
    def resolver_options(self, database: Database) -> Mapping[str, Any]:
        asyncio.run(seed(database, *ROWS))
        asyncio.run(with_payments_table(database))
        return options(
            database, payments_table="doku_payments", payment_statement=PAYMENT_STATEMENT
        )

    @pytest.fixture
    def unavailable_resolver_options(self, database: Database) -> Mapping[str, Any]:
        host, _, _ = database.dsn.rpartition(":")
        return options(database, dsn=f"{host}:{free_port()}/nothing")

    @pytest.fixture
    def slow_resolver_options(self, database: Database) -> Mapping[str, Any]:
        asyncio.run(seed(database, *ROWS))
        return options(database, query=slow_query(database, 5), statement_timeout=0.5)

    async def observe_payment(self, resolver: Resolver, payment: Payment) -> object:
        # The number of payments applied to the bill: concurrent duplicates must add one.
        assert isinstance(resolver, SqlResolver)
        async with resolver.database.connect() as connection:
            rows = await resolver.database.execute(
                connection,
                text("SELECT payments FROM bills WHERE va = :va"),
                {"va": payment.payment_code},
            )
        return int(rows[0]["payments"])
