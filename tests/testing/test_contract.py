"""gateway.testing.contract: the contract passes a good resolver and catches each way to break it.

The suites run in a pytest of their own (a subprocess), since most of them must fail.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

RESOLVERS = '''
import asyncio
from decimal import Decimal

from gateway import Bill, BillStatus, ResolverUnavailable
from gateway.testing import ResolverContract, resolver_contract

GOOD_BILL = Bill(name="Budi", amount=Decimal("25000.00"))
SAMPLES = {"8889900000001": Bill, "8889900000009": BillStatus.NOT_FOUND}


class Good:
    """Keeps every rule: the control."""

    def __init__(self, options):
        self.down = options.get("down", False)
        self.slow = options.get("slow", False)
        self.credited = {}
        self.started = False

    async def startup(self, context):
        self.started = True

    async def health(self):
        return not self.down

    async def shutdown(self):
        self.started = False

    async def resolve(self, inquiry):
        if self.down:
            raise ResolverUnavailable("backend down")
        if self.slow:
            try:
                async with asyncio.timeout(0.2):
                    await asyncio.sleep(10)
            except TimeoutError:
                raise ResolverUnavailable("backend slow") from None
        await asyncio.sleep(0)
        return GOOD_BILL if inquiry.payment_code == "8889900000001" else BillStatus.NOT_FOUND

    async def on_payment(self, payment):
        self.credited.setdefault(payment.payment_request_id, payment.paid_amount)

    def total(self):
        return sum(self.credited.values(), Decimal(0))


class GoodSuite(ResolverContract):
    factory = Good
    samples = SAMPLES
    unavailable_options = {"down": True}
    slow_options = {"slow": True}
    timeout = 1.0

    async def observe_payment(self, resolver, payment):
        return resolver.total()


class TestGood(GoodSuite):
    pass


class WrongType(Good):
    async def resolve(self, inquiry):
        return {"name": "Budi", "amount": "25000.00"}


class TestWrongType(GoodSuite):
    factory = WrongType


class FloatBill(Good):
    async def resolve(self, inquiry):
        return Bill(name="Budi", amount=25000.0)


class TestFloatBill(GoodSuite):
    factory = FloatBill


class NotFoundEverywhere(Good):
    async def resolve(self, inquiry):
        return BillStatus.NOT_FOUND


class TestNotFoundEverywhere(GoodSuite):
    factory = NotFoundEverywhere


class SlowHealth(Good):
    async def health(self):
        await asyncio.sleep(1.5)
        return True


class TestSlowHealth(GoodSuite):
    factory = SlowHealth


class ShutdownOnce(Good):
    async def shutdown(self):
        if not self.started:
            raise RuntimeError("not started")
        self.started = False


class TestShutdownOnce(GoodSuite):
    factory = ShutdownOnce


class DownMeansNotFound(Good):
    async def resolve(self, inquiry):
        if self.down:
            return BillStatus.NOT_FOUND
        return await super().resolve(inquiry)


class TestDownMeansNotFound(GoodSuite):
    factory = DownMeansNotFound


class DownRaisesOther(Good):
    async def resolve(self, inquiry):
        if self.down:
            raise ConnectionRefusedError("refused")
        return await super().resolve(inquiry)


class TestDownRaisesOther(GoodSuite):
    factory = DownRaisesOther


class SlowForever(Good):
    async def resolve(self, inquiry):
        if self.slow:
            await asyncio.sleep(10)
        return await super().resolve(inquiry)


class TestSlowForever(GoodSuite):
    factory = SlowForever


class PaysTwice(Good):
    async def on_payment(self, payment):
        self.credited[len(self.credited)] = payment.paid_amount


class TestPaysTwice(GoodSuite):
    factory = PaysTwice


class RacyPayment(Good):
    """Idempotent one by one, but checks and then writes with an await in between."""

    async def on_payment(self, payment):
        if payment.payment_request_id in self.credited:
            return
        await asyncio.sleep(0.01)
        self.credited[payment.payment_request_id + str(len(self.credited))] = payment.paid_amount
        self.credited[payment.payment_request_id] = Decimal(0)


class TestRacyPayment(GoodSuite):
    factory = RacyPayment


class BreaksWhenCancelled(Good):
    """Holds a lock it forgets to release when cancelled."""

    busy = False

    async def resolve(self, inquiry):
        if self.busy:
            raise RuntimeError("still busy from a cancelled call")
        self.busy = True
        await asyncio.sleep(0.001)
        self.busy = False
        return await super().resolve(inquiry)


class TestBreaksWhenCancelled(GoodSuite):
    factory = BreaksWhenCancelled


class CheckRefuses(Good):
    @classmethod
    def check(cls, options):
        return ["option 'dsn' is required"]


class TestCheckRefuses(GoodSuite):
    factory = CheckRefuses


class SyncResolve:
    def __init__(self, options):
        pass

    def resolve(self, inquiry):
        return BillStatus.NOT_FOUND


class TestSyncResolve(GoodSuite):
    factory = SyncResolve


def make_good(options):
    return Good(options)


TestOneLine = resolver_contract(make_good, {}, SAMPLES, timeout=1.0)
'''

# Which contract tests each broken resolver must fail (the others may pass or fail).
MUST_FAIL = {
    "TestWrongType": ["test_samples_answer_valid_outcomes"],
    "TestFloatBill": ["test_samples_answer_valid_outcomes"],
    "TestNotFoundEverywhere": ["test_samples_answer_valid_outcomes"],
    "TestSlowHealth": ["test_health_answers_within_a_second"],
    "TestShutdownOnce": ["test_shutdown_is_idempotent"],
    "TestDownMeansNotFound": ["test_unreachable_backend_raises_resolver_unavailable"],
    "TestDownRaisesOther": ["test_unreachable_backend_raises_resolver_unavailable"],
    "TestSlowForever": ["test_slow_backend_raises_resolver_unavailable_in_time"],
    "TestPaysTwice": ["test_on_payment_is_idempotent"],
    "TestRacyPayment": ["test_on_payment_is_idempotent"],
    "TestBreaksWhenCancelled": ["test_cancelled_inquiries_leave_it_working"],
    "TestSyncResolve": ["test_factory_builds_a_resolver"],
    "TestCheckRefuses": ["test_factory_builds_a_resolver"],
}
CONTRACT_TESTS = 9


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    directory: Path = tmp_path_factory.mktemp("contract")
    (directory / "test_resolvers.py").write_text(textwrap.dedent(RESOLVERS), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "test_resolvers.py"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    found = re.findall(
        r"test_resolvers\.py::(\w+)::(\w+) (PASSED|FAILED|SKIPPED|ERROR)", result.stdout
    )
    assert found, result.stdout + result.stderr
    return {(suite, test): outcome for suite, test, outcome in found}


def test_a_good_resolver_passes_every_check(outcomes: dict[tuple[str, str], str]) -> None:
    good = {test: outcome for (suite, test), outcome in outcomes.items() if suite == "TestGood"}
    assert len(good) == CONTRACT_TESTS
    assert set(good.values()) == {"PASSED"}, good


def test_the_one_line_form_runs_the_same_checks(outcomes: dict[tuple[str, str], str]) -> None:
    one_line = {test: o for (suite, test), o in outcomes.items() if suite == "TestOneLine"}
    assert len(one_line) == CONTRACT_TESTS
    # No on_payment observation, unavailable or slow options given: those are skipped.
    skipped = {test for test, outcome in one_line.items() if outcome == "SKIPPED"}
    assert skipped == {
        "test_unreachable_backend_raises_resolver_unavailable",
        "test_slow_backend_raises_resolver_unavailable_in_time",
    }
    assert {outcome for test, outcome in one_line.items() if test not in skipped} == {"PASSED"}


@pytest.mark.parametrize(("suite", "tests"), sorted(MUST_FAIL.items()))
def test_each_broken_rule_is_caught(
    outcomes: dict[tuple[str, str], str], suite: str, tests: list[str]
) -> None:
    for test in tests:
        assert outcomes[(suite, test)] == "FAILED", (suite, test, outcomes.get((suite, test)))
