from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from doku_gateway_static import StaticBills

from gateway import Bill, BillStatus, ConfigError, Inquiry, ResolverContext, ResolverSet
from gateway.resolvers.loader import build_resolver

BILLS: dict[str, Any] = {
    "8808123400001": {
        "name": "Budi Santoso",
        "amount": "150000.00",
        "expires_at": "2030-12-31T23:59:59+07:00",
        "trx_id": "INV-2030-0001",
        "email": "budi@example.com",
        "phone": "6281234567890",
    },
    "8808123400002": {
        "name": "Donation",
        "trx_type": "O",
        "amount": "0.00",
        "min_amount": "10000.00",
        "max_amount": "5000000.00",
    },
    "8808123400003": {"status": "paid", "name": "Old invoice", "amount": "1.00"},
    "8808123400004": {"status": "expired"},
}


def make_inquiry(payment_code: str) -> Inquiry:
    return Inquiry(
        partner_service_id="    8808",
        customer_no=payment_code[4:],
        virtual_account_no="    " + payment_code,
        payment_code=payment_code,
        inquiry_request_id="req-1",
        channel="VIRTUAL_ACCOUNT_BCA",
        body={},
    )


def write(path: Path, bills: Any) -> None:
    """Write a new version whose mtime is surely newer than the last one's."""
    previous = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(json.dumps(bills) if not isinstance(bills, str) else bills, encoding="utf-8")
    mtime = max(path.stat().st_mtime_ns, previous + 1_000_000_000)
    os.utime(path, ns=(mtime, mtime))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def bills_file(tmp_path: Path) -> Path:
    path = tmp_path / "bills.json"
    write(path, BILLS)
    return path


@pytest.mark.anyio
async def test_answers_every_kind_of_entry(bills_file: Path) -> None:
    resolver = StaticBills({"path": str(bills_file)})

    closed = await resolver.resolve(make_inquiry("8808123400001"))
    assert closed == Bill(
        name="Budi Santoso",
        amount=Decimal("150000.00"),
        expires_at=datetime(2030, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=7))),
        trx_id="INV-2030-0001",
        email="budi@example.com",
        phone="6281234567890",
    )
    assert isinstance(closed, Bill) and type(closed.amount) is Decimal

    open_bill = await resolver.resolve(make_inquiry("8808123400002"))
    assert isinstance(open_bill, Bill)
    assert open_bill.trx_type == "O"
    assert (open_bill.min_amount, open_bill.max_amount) == (
        Decimal("10000.00"),
        Decimal("5000000.00"),
    )
    assert await resolver.resolve(make_inquiry("8808123400003")) is BillStatus.ALREADY_PAID
    assert await resolver.resolve(make_inquiry("8808123400004")) is BillStatus.EXPIRED
    assert await resolver.resolve(make_inquiry("8808123400099")) is BillStatus.NOT_FOUND


def test_open_bill_amount_defaults_to_zero(tmp_path: Path) -> None:
    path = tmp_path / "bills.json"
    write(path, {"8808123400002": {"name": "Donation", "trx_type": "O"}})
    bill = StaticBills({"path": str(path)}).bills["8808123400002"]
    assert isinstance(bill, Bill) and bill.amount == Decimal("0.00")


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"name": "Budi", "amount": 150000.0}, "amount"),
        ({"name": "Budi", "amount": 150000}, "amount"),
        ({"name": "Budi", "amount": "1.00", "max_amount": 5000000, "trx_type": "O"}, "max_amount"),
    ],
)
def test_money_as_a_json_number_is_refused(tmp_path: Path, entry: Any, field: str) -> None:
    path = tmp_path / "bills.json"
    write(path, {"8808123400009": entry})
    with pytest.raises(ValueError, match=rf"payment code 8808123400009: {field}: .*JSON number"):
        StaticBills({"path": str(path)})


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"name": "Budi", "amount": "150000.005"}, "amount"),
        ({"name": "Budi", "amount": "-1.00"}, "amount"),
        ({"name": "Budi", "amount": "1e5"}, "amount"),
        ({"name": "Budi"}, "amount"),
        ({"amount": "1.00"}, "name"),
        ({"name": 7, "amount": "1.00"}, "name"),
        ({"name": "Budi <b>", "amount": "1.00"}, "name"),
        ({"name": "Budi", "amount": "1.00", "amout": "2.00"}, "amout"),
        ({"name": "Budi", "amount": "1.00", "trx_type": "X"}, "trx_type"),
        ({"name": "Budi", "amount": "1.00", "expires_at": "2030-12-31T23:59:59"}, "expires_at"),
        ({"name": "Budi", "amount": "1.00", "expires_at": "next week"}, "expires_at"),
        ({"name": "Budi", "amount": "1.00", "min_amount": "1.00"}, "min_amount"),
        ({"name": "Budi", "amount": "1.00", "phone": "12"}, "phone"),
        ({"name": "Budi", "amount": "1.00", "email": "budi"}, "email"),
        ({"name": "Budi", "amount": "1.00", "trx_id": "x" * 65}, "trx_id"),
        ({"status": "refunded"}, "status"),
        ({"status": ["paid"]}, "status"),
        ("not an object", "must be a JSON object"),
    ],
)
def test_invalid_entry_names_code_and_field(tmp_path: Path, entry: Any, field: str) -> None:
    path = tmp_path / "bills.json"
    write(path, {"8808123400001": BILLS["8808123400001"], "8808123400009": entry})
    with pytest.raises(ValueError) as caught:
        StaticBills({"path": str(path)})
    message = str(caught.value)
    assert str(path) in message
    assert "payment code 8808123400009: " in message
    assert field in message.split("payment code 8808123400009: ", 1)[1]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"8808-1234": {"status": "paid"}}', r"payment code '8808-1234': must be 1-28 digits"),
        ('{"88081 234": {"status": "paid"}}', r"payment code '88081 234'"),
        ('{"1": {"status": "paid"}, "1": {"status": "expired"}}', r"key '1' appears twice"),
        ('{"1": {"status": "paid"},}', r"not valid JSON"),
        ('["8808123400001"]', r"must be a JSON object mapping payment codes"),
    ],
)
def test_invalid_file_is_refused(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bills.json"
    write(path, content)
    with pytest.raises(ValueError, match=match):
        StaticBills({"path": str(path)})


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "option 'path' is required"),
        ({"path": ""}, "option 'path' is required"),
        ({"path": "BILLS", "reload": "yes"}, "option 'reload' must be true or false"),
        ({"path": "BILLS", "relaod": True}, "unknown option 'relaod'"),
        ({"path": "MISSING"}, "cannot read"),
    ],
)
def test_options_are_checked(bills_file: Path, options: dict[str, Any], match: str) -> None:
    names = {"BILLS": str(bills_file), "MISSING": str(bills_file.with_name("missing.json"))}
    options = {key: names.get(value, value) for key, value in options.items()}
    with pytest.raises(ValueError, match=match):
        StaticBills(options)


@pytest.mark.anyio
async def test_is_found_by_its_entry_point(bills_file: Path) -> None:
    resolver = build_resolver("static", {"path": str(bills_file)})
    assert isinstance(resolver, StaticBills)
    assert await resolver.resolve(make_inquiry("8808123400004")) is BillStatus.EXPIRED

    write(bills_file, {"8808123400009": {"name": "Budi", "amount": 1.5}})
    with pytest.raises(ConfigError, match=r"static refused its options: .*8808123400009: amount"):
        build_resolver("static", {"path": str(bills_file)})


@pytest.mark.anyio
async def test_reload_checks_at_most_once_per_interval(bills_file: Path) -> None:
    clock = FakeClock()
    resolver = StaticBills({"path": str(bills_file), "reload": True}, clock=clock)
    changed = dict(BILLS, **{"8808123400001": {"name": "Budi Santoso", "amount": "99.00"}})
    write(bills_file, changed)

    async def amount() -> Decimal:
        bill = await resolver.resolve(make_inquiry("8808123400001"))
        assert isinstance(bill, Bill)
        return bill.amount

    assert await amount() == Decimal("150000.00")
    clock.now += 0.9
    assert await amount() == Decimal("150000.00")
    clock.now += 0.1
    assert await amount() == Decimal("99.00")


@pytest.mark.anyio
async def test_without_reload_the_file_is_read_once(bills_file: Path) -> None:
    clock = FakeClock()
    resolver = StaticBills({"path": str(bills_file)}, clock=clock)
    write(bills_file, {})
    clock.now += 60
    assert isinstance(await resolver.resolve(make_inquiry("8808123400001")), Bill)


@pytest.mark.anyio
async def test_invalid_new_version_keeps_the_last_good_bills(
    bills_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    resolver = StaticBills({"path": str(bills_file), "reload": True}, clock=clock)
    write(bills_file, {"8808123400001": {"name": "Budi", "amount": 150000.0}})

    with caplog.at_level(logging.WARNING, logger="doku_gateway.resolver.static"):
        for _ in range(3):
            clock.now += 1
            assert isinstance(await resolver.resolve(make_inquiry("8808123400001")), Bill)
            assert await resolver.resolve(make_inquiry("8808123400004")) is BillStatus.EXPIRED
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per bad version, not one per check"
    assert "8808123400001: amount" in warnings[0] and "keeping the bills" in warnings[0]

    write(bills_file, {"8808123400001": {"status": "paid"}})
    clock.now += 1
    assert await resolver.resolve(make_inquiry("8808123400001")) is BillStatus.ALREADY_PAID
    assert await resolver.resolve(make_inquiry("8808123400004")) is BillStatus.NOT_FOUND


@pytest.mark.anyio
async def test_deleted_file_keeps_bills_and_fails_health(
    bills_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    resolver = StaticBills({"path": str(bills_file), "reload": True}, clock=clock)
    assert await resolver.health() is True

    os.remove(bills_file)
    assert await resolver.health() is False
    with caplog.at_level(logging.WARNING, logger="doku_gateway.resolver.static"):
        for _ in range(3):
            clock.now += 1
            assert isinstance(await resolver.resolve(make_inquiry("8808123400001")), Bill)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot read" in warnings[0]

    write(bills_file, BILLS)
    assert await resolver.health() is True


@pytest.mark.anyio
async def test_reload_after_startup_invalidates_changed_codes(bills_file: Path) -> None:
    resolver = StaticBills({"path": str(bills_file), "reload": True}, interval=0.01)
    invalidated: list[str] = []
    done = anyio.Event()

    async def invalidate(code: str) -> None:
        invalidated.append(code)
        if len(invalidated) == 3:
            done.set()

    context = ResolverContext(
        "static", {}, invalidate, logging.getLogger("doku_gateway.resolver.test")
    )
    await resolver.startup(context)
    try:
        new = {key: value for key, value in BILLS.items() if key != "8808123400004"}
        new["8808123400001"] = {"status": "paid"}  # changed
        new["8808123400005"] = {"name": "New", "amount": "5.00"}  # added
        write(bills_file, new)
        with anyio.fail_after(5):
            await done.wait()
        assert sorted(invalidated) == ["8808123400001", "8808123400004", "8808123400005"]
        assert await resolver.resolve(make_inquiry("8808123400001")) is BillStatus.ALREADY_PAID
    finally:
        await resolver.shutdown()


@pytest.mark.anyio
async def test_bills_pass_the_gateways_own_checks(bills_file: Path) -> None:
    resolvers = ResolverSet.single(build_resolver("static", {"path": str(bills_file)}))

    async def invalidate(code: str) -> None:
        raise AssertionError("nothing changed")

    await resolvers.startup(invalidate)
    try:
        route = resolvers.route("8808")
        assert route is not None
        expected = StaticBills({"path": str(bills_file)}).bills
        for code in BILLS:
            assert await resolvers.resolve(route, make_inquiry(code)) == expected[code]
        assert await resolvers.health(1.0) == {"default": True}
    finally:
        await resolvers.shutdown()
