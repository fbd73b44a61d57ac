"""gateway.testing's resolver kit: make_inquiry, make_payment, make_context."""

from __future__ import annotations

import logging
import subprocess
import sys
from decimal import Decimal

import pytest

import gateway.testing
from gateway import Bill, BillStatus, Inquiry, Payment, ResolverContext
from gateway.snap.inquiry import parse_inquiry
from gateway.snap.payment import parse_payment
from gateway.testing import Invalidations, make_context, make_inquiry, make_payment


def test_inquiry_is_what_the_gateway_parses_from_dokus_body() -> None:
    inquiry = make_inquiry(
        "8889900001234", inquiry_request_id="req-1", channel="VIRTUAL_ACCOUNT_BCA"
    )
    expected = parse_inquiry(
        {
            "partnerServiceId": "   88899",
            "customerNo": "00001234",
            "virtualAccountNo": "   8889900001234",
            "inquiryRequestId": "req-1",
            "trxDateInit": "2025-01-31T10:00:00+07:00",
            "additionalInfo": {"channel": "VIRTUAL_ACCOUNT_BCA"},
        }
    )
    assert inquiry == expected
    assert inquiry.partner_service_id == "   88899" and inquiry.partner_prefix == "88899"
    assert inquiry.payment_code == "8889900001234"
    with pytest.raises(TypeError):
        inquiry.body["customerNo"] = "changed"  # type: ignore[index]


def test_inquiry_options() -> None:
    inquiry = make_inquiry(
        "8808 123400001",
        partner_service_id="8808",
        language="ID",
        trx_date_init=None,
        extra={"channelCode": 6011},
    )
    assert (inquiry.partner_service_id, inquiry.customer_no) == ("    8808", "123400001")
    assert inquiry.payment_code == "8808123400001"
    assert (inquiry.language, inquiry.trx_date_init) == ("ID", None)
    assert inquiry.body["channelCode"] == 6011
    # Each inquiry gets its own request id unless one is given.
    assert make_inquiry("8808123400001").inquiry_request_id != inquiry.inquiry_request_id


@pytest.mark.parametrize(
    ("va", "prefix"),
    [("88899abc", None), ("8" * 29, None), ("8889900001234", "12345"), ("88899", "88899")],
)
def test_inquiry_refuses_impossible_vas(va: str, prefix: str | None) -> None:
    with pytest.raises(ValueError, match=r"va|partner_service_id"):
        make_inquiry(va, partner_service_id=prefix)


def test_payment_is_what_the_gateway_parses_from_dokus_notification() -> None:
    payment = make_payment(
        "8889900001234", "25000.00", payment_request_id="pay-1", trx_id="INV-1", trx_type="C"
    )
    assert isinstance(payment, Payment)
    assert (payment.payment_request_id, payment.trx_id, payment.trx_type) == ("pay-1", "INV-1", "C")
    assert payment.paid_amount == Decimal("25000.00") and type(payment.paid_amount) is Decimal
    assert payment.virtual_account_no == "   8889900001234"
    assert payment.flags == ()
    assert parse_payment(dict(payment.body)) == payment
    assert make_payment("8889900001234", Decimal("1")).paid_amount == Decimal("1.00")


def test_payment_flags_come_from_the_bill_as_the_gateway_sets_them() -> None:
    closed = Bill(name="Budi", amount=Decimal("25000.00"))
    open_bill = Bill(
        name="Top Up",
        amount=Decimal("0.00"),
        trx_type="O",
        min_amount=Decimal("10000.00"),
        max_amount=Decimal("50000.00"),
    )
    va = "8889900001234"
    assert make_payment(va, "25000.00", bill=closed).flags == ()
    assert make_payment(va, "20000.00", bill=closed).flags == ("amount_differs",)
    assert make_payment(va, "5000.00", bill=open_bill).flags == ("below_min",)
    assert make_payment(va, "60000.00", bill=open_bill).flags == ("above_max",)
    assert make_payment(va, "1.00", bill=BillStatus.ALREADY_PAID).flags == ("bill_already_paid",)
    assert make_payment(va, "1.00", flags=("custom",)).flags == ("custom",)


def test_payment_refuses_a_float_amount() -> None:
    with pytest.raises(TypeError, match="not a float"):
        make_payment("8889900001234", 25000.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two decimals"):
        make_payment("8889900001234", "1.005")


@pytest.mark.anyio
async def test_context_records_invalidations() -> None:
    invalidations = Invalidations()
    logger = logging.getLogger("test.kit")
    context = make_context("billing", {"dsn": "x"}, invalidate=invalidations, logger=logger)
    assert isinstance(context, ResolverContext)
    assert (context.name, dict(context.options), context.logger) == (
        "billing",
        {"dsn": "x"},
        logger,
    )
    await context.invalidate("8889900001234")
    assert invalidations.codes == ["8889900001234"]
    default = make_context()
    assert default.logger.name == "doku_gateway.resolver.test"
    await default.invalidate("1")  # records into its own list; nothing to raise


def test_public_names() -> None:
    assert sorted(gateway.testing.__all__) == gateway.testing.__all__
    for name in gateway.testing.__all__:
        assert getattr(gateway.testing, name) is not None
    with pytest.raises(AttributeError):
        gateway.testing.no_such_helper  # noqa: B018


def test_importing_the_kit_does_not_need_pytest() -> None:
    # Merchants may import gateway.testing outside a test run; only the contract needs pytest.
    code = "import sys, gateway.testing; print('pytest' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    assert isinstance(make_inquiry("8889900001234"), Inquiry)
