"""The ``topup`` example plugin on a real PostgreSQL and MariaDB, with its shipped schema."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import pytest
from doku_gateway_topup import TopUp, holder_name, schema_sql
from sqlalchemy import text

from gateway import Bill, BillStatus, Payment, Resolver, ResolverError, ResolverUnavailable
from gateway.testing import (
    Expectation,
    ResolverContract,
    make_context,
    make_inquiry,
    make_payment,
)

from ._databases import Database, free_port

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "plugins" / "topup" / "src"
_BALANCE = text("SELECT balance FROM topup_accounts WHERE payment_code = :code")
BUDI = "8889900001234"
SITI = "8889900005678"
NOBODY = "8889900009999"


async def create_accounts(database: Database) -> None:
    await database.script(schema_sql("postgresql" if database.kind == "postgresql" else "mysql"))
    await database.run(
        "INSERT INTO topup_accounts (payment_code, holder_name, email, phone) "
        "VALUES (:code, :name, :email, :phone)",
        code=BUDI,
        name="Budi Santoso",
        email="budi@example.com",
        phone="6281234567890",
    )
    await database.run(
        "INSERT INTO topup_accounts (payment_code, holder_name, min_topup, max_topup) "
        "VALUES (:code, :name, :low, :high)",
        code=SITI,
        name="Sití Nur'aini (VIP) 😀",
        low=Decimal("50000.00"),
        high=Decimal("250000.00"),
    )


async def balance(database: Database, code: str) -> Decimal:
    (row,) = await database.run(
        "SELECT balance FROM topup_accounts WHERE payment_code = :code", code=code
    )
    value = row["balance"]
    assert isinstance(value, Decimal)
    return value


async def credits(database: Database) -> list[dict[str, object]]:
    return await database.run(
        "SELECT payment_request_id, payment_code, amount, flags FROM topup_credits "
        "ORDER BY payment_request_id"
    )


@pytest.fixture
async def accounts(database: Database) -> Database:
    await create_accounts(database)
    return database


@pytest.fixture
async def topup(accounts: Database) -> AsyncIterator[TopUp]:
    resolver = TopUp({"dsn": accounts.dsn})
    await resolver.startup(make_context("topup"))
    yield resolver
    await resolver.shutdown()


@pytest.mark.anyio
async def test_each_account_is_a_reusable_open_bill_with_its_own_limits(topup: TopUp) -> None:
    budi = await topup.resolve(make_inquiry(BUDI))
    assert budi == Bill(
        name="Budi Santoso",
        amount=Decimal("0.00"),
        trx_type="O",
        min_amount=Decimal("10000.00"),
        max_amount=Decimal("5000000.00"),
        email="budi@example.com",
        phone="6281234567890",
        reusable=True,
        cache_ttl=60.0,
    )
    siti = await topup.resolve(make_inquiry(SITI))
    assert isinstance(siti, Bill)
    assert (siti.min_amount, siti.max_amount) == (Decimal("50000.00"), Decimal("250000.00"))
    assert siti.name == "Siti Nur'aini VIP"
    assert await topup.resolve(make_inquiry(NOBODY)) is BillStatus.NOT_FOUND


@pytest.mark.anyio
async def test_a_payment_is_credited_once(topup: TopUp, accounts: Database) -> None:
    payment = make_payment(BUDI, "50000.00", bill=await topup.resolve(make_inquiry(BUDI)))
    await topup.on_payment(payment)
    await topup.on_payment(payment)
    assert await balance(accounts, BUDI) == Decimal("50000.00")
    # Redelivered after a restart of the gateway: a new resolver, the same answer.
    restarted = TopUp({"dsn": accounts.dsn})
    await restarted.startup(make_context("topup"))
    try:
        await restarted.on_payment(payment)
    finally:
        await restarted.shutdown()
    assert await balance(accounts, BUDI) == Decimal("50000.00")
    (credit,) = await credits(accounts)
    assert credit["payment_request_id"] == payment.payment_request_id
    assert credit["amount"] == Decimal("50000.00")
    # The VA stays payable: the next top-up is credited too.
    await topup.on_payment(make_payment(BUDI, "25000.50"))
    assert await balance(accounts, BUDI) == Decimal("75000.50")


@pytest.mark.anyio
async def test_concurrent_duplicates_from_several_pods_credit_once(
    topup: TopUp, accounts: Database
) -> None:
    pods = [TopUp({"dsn": accounts.dsn}) for _ in range(3)]
    for pod in pods:
        await pod.startup(make_context("topup"))
    try:
        payment = make_payment(BUDI, "100000.00")
        deliveries = [pod.on_payment(payment) for pod in [topup, *pods] for _ in range(3)]
        await asyncio.gather(*deliveries)
    finally:
        for pod in pods:
            await pod.shutdown()
    assert await balance(accounts, BUDI) == Decimal("100000.00")
    assert len(await credits(accounts)) == 1


@pytest.mark.anyio
async def test_concurrent_different_payments_are_all_credited_exactly(
    topup: TopUp, accounts: Database
) -> None:
    # Ten payments of 0.10 at once: no update is lost and no cent is rounded away.
    payments = [make_payment(BUDI, Decimal("0.10")) for _ in range(10)]
    await asyncio.gather(*(topup.on_payment(payment) for payment in payments))
    assert await balance(accounts, BUDI) == Decimal("1.00")
    assert len(await credits(accounts)) == 10


@pytest.mark.anyio
async def test_payment_outside_the_limits_is_credited_with_its_flags(
    topup: TopUp, accounts: Database
) -> None:
    bill = await topup.resolve(make_inquiry(SITI))
    await topup.on_payment(make_payment(SITI, "1000.00", bill=bill))
    assert await balance(accounts, SITI) == Decimal("1000.00")
    (credit,) = await credits(accounts)
    assert credit["flags"] == "below_min"


@pytest.mark.anyio
async def test_payment_for_a_missing_account_is_refused_and_nothing_recorded(
    topup: TopUp, accounts: Database
) -> None:
    payment = make_payment(NOBODY, "50000.00")
    # Raised, so the gateway retries and finally parks it as a dead letter.
    with pytest.raises(ResolverError):
        await topup.on_payment(payment)
    assert await credits(accounts) == []
    # Once the account exists, the redelivery is credited (the failed try left no record).
    await accounts.run(
        "INSERT INTO topup_accounts (payment_code, holder_name) VALUES (:code, 'Late')",
        code=NOBODY,
    )
    await topup.on_payment(payment)
    assert await balance(accounts, NOBODY) == Decimal("50000.00")


@pytest.mark.anyio
async def test_database_down_is_unavailable(topup: TopUp, accounts: Database) -> None:
    await asyncio.to_thread(accounts.server.stop)
    try:
        with pytest.raises(ResolverUnavailable):
            await topup.resolve(make_inquiry(BUDI))
        with pytest.raises(ResolverUnavailable):
            await topup.on_payment(make_payment(BUDI, "50000.00"))
    finally:
        await asyncio.to_thread(accounts.server.start)
    assert isinstance(await topup.resolve(make_inquiry(BUDI)), Bill)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Budi Santoso", "Budi Santoso"),
        ("José  Ñúñez", "Jose Nunez"),
        ("PT. Maju-Jaya / Cab. 2", "PT. Maju-Jaya / Cab. 2"),
        ("王小明", ""),
        ("x" * 300, "x" * 255),
    ],
)
def test_holder_name_is_made_acceptable_to_doku(name: str, shown: str) -> None:
    assert holder_name(name) == shown


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="'dsn' is required"):
        TopUp({})
    with pytest.raises(ValueError, match="'cache_ttl'"):
        TopUp({"dsn": "postgresql://u@h/db", "cache_ttl": -1})
    with pytest.raises(ValueError, match="unknown option 'query'"):
        TopUp({"dsn": "postgresql://u@h/db", "query": "SELECT 1"})
    assert TopUp.check({"dsn": "mysql://u@h/db", "cache_ttl": "soon"}) == [
        "option 'cache_ttl' must be a non-negative number of seconds"
    ]
    assert TopUp.check({"dsn": "mysql://u@h/db"}) == []


def test_schema_is_printed_by_the_module() -> None:
    for family in ("postgresql", "mysql"):
        printed = subprocess.run(
            [sys.executable, "-m", "doku_gateway_topup", "schema", family],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        shipped = SCHEMA_DIR / "doku_gateway_topup" / "schema" / f"{family}.sql"
        assert printed == shipped.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="no schema"):
        schema_sql("sqlite")


def test_is_found_by_its_entry_point() -> None:
    (entry,) = entry_points(group="doku_gateway.resolvers", name="topup")
    assert entry.load() is TopUp


class TestTopUpContract(ResolverContract):
    factory = TopUp
    samples: ClassVar[Mapping[str, Expectation]] = {
        BUDI: Bill,
        SITI: Bill,
        NOBODY: BillStatus.NOT_FOUND,
    }

    @pytest.fixture
    def resolver_options(self, database: Database) -> Mapping[str, Any]:
        asyncio.run(create_accounts(database))
        return {"dsn": database.dsn}

    @pytest.fixture
    def unavailable_resolver_options(self, database: Database) -> Mapping[str, Any]:
        host, _, _ = database.dsn.rpartition(":")
        return {"dsn": f"{host}:{free_port()}/nothing"}

    async def observe_payment(self, resolver: Resolver, payment: Payment) -> object:
        # The balance: concurrent duplicates must change it exactly as one delivery does.
        assert isinstance(resolver, TopUp)
        async with resolver.database.connect() as connection:
            rows = await resolver.database.execute(
                connection,
                _BALANCE,
                {"code": payment.payment_code},
            )
        return rows[0]["balance"]
