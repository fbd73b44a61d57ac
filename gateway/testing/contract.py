"""The resolver contract: what the gateway relies on a resolver plugin to do, as pytest tests.

Subclass :class:`ResolverContract` in a test module of the plugin, name the factory, its
options and a few sample VAs with what each should answer, and run ``pytest``::

    from gateway import Bill, BillStatus
    from gateway.testing import ResolverContract

    from billing import Billing

    class TestBillingContract(ResolverContract):
        factory = Billing
        options = {"url": "http://127.0.0.1:8000/va/{payment_code}"}
        samples = {"8889900001234": Bill, "8889900009999": BillStatus.NOT_FOUND}

or in one line, ``TestBilling = resolver_contract(Billing, options, samples)``.

Options that come from other fixtures (a database started for the tests) are given by
overriding the ``resolver_options`` fixture in the subclass. ``unavailable_options`` (the
backend unreachable) and ``slow_options`` (the backend answering too late) switch on the checks
for temporary failures; without them those tests are skipped with the reason.

Every test runs its own event loop (``asyncio.run``), so no async pytest plugin is needed; each
resolver is built by the factory, started with :func:`~gateway.testing.make_context` and shut
down at the end, as the gateway does.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import pytest

from gateway import (
    Bill,
    BillStatus,
    Outcome,
    Payment,
    Resolver,
    ResolverError,
    ResolverFactory,
    ResolverUnavailable,
    validate_bill,
)

from ._kit import make_context, make_inquiry, make_payment

__all__ = ["Expectation", "ResolverContract", "resolver_contract"]

#: What a sample VA should answer: any bill (``Bill``), this bill (a ``Bill`` value) or a status.
Expectation = type[Bill] | Bill | BillStatus

_T = TypeVar("_T")
_HOOKS = ("resolve", "startup", "health", "shutdown", "on_payment")
# Points at which an inquiry is cancelled, as the gateway's timeout would cancel it: before the
# first await, and a few moments into the backend call.
_CANCEL_AFTER = (0.0, 0.0005, 0.002, 0.01, 0.05)
_HEALTH_LIMIT = 1.0
_DUPLICATES = 4


def _run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(coroutine)


class ResolverContract:
    """Contract tests for one resolver factory; subclass it as ``Test…`` (see the module doc).

    Class attributes:

    * ``factory`` (required): the resolver factory, as named in ``use = …``;
    * ``options``: what ``[[resolvers]].options`` would hold (or override ``resolver_options``);
    * ``samples``: VA numbers (payment codes) → :data:`Expectation`; at least one. A sample
      answering a bill is used for the payment checks;
    * ``unavailable_options`` / ``slow_options``: the same resolver with its backend unreachable
      / answering later than ``timeout`` (or override the fixtures of the same names);
    * ``timeout``: the resolver timeout the gateway will use (``[[resolvers]].timeout``);
    * ``partner_service_id``: the prefix the sample VAs start with (default: five digits).
    """

    # Not a ClassVar: type checkers would take a callable ClassVar for a method and drop its
    # first parameter (the options).
    factory: ResolverFactory
    options: ClassVar[Mapping[str, Any]] = {}
    samples: ClassVar[Mapping[str, Expectation] | Sequence[str]] = ()
    unavailable_options: ClassVar[Mapping[str, Any] | None] = None
    slow_options: ClassVar[Mapping[str, Any] | None] = None
    timeout: ClassVar[float] = 3.0
    partner_service_id: ClassVar[str | None] = None

    # -- fixtures a subclass may override -------------------------------------------------

    @pytest.fixture
    def resolver_options(self) -> Mapping[str, Any]:
        """The options of a working resolver."""
        return self.options

    @pytest.fixture
    def unavailable_resolver_options(self) -> Mapping[str, Any] | None:
        """Options whose backend cannot be reached (refused connection, server stopped)."""
        return self.unavailable_options

    @pytest.fixture
    def slow_resolver_options(self) -> Mapping[str, Any] | None:
        """Options whose backend answers later than ``timeout``."""
        return self.slow_options

    # -- hooks a subclass may override ----------------------------------------------------

    async def observe_payment(self, resolver: Resolver, payment: Payment) -> object:
        """What ``on_payment(payment)`` changes, as a comparable value.

        The default is the resolver's answer for the VA. Return a number (a balance, a count
        of recorded rows) to have concurrent duplicates checked too: the change they make must
        equal the change of one delivery.
        """
        return await resolver.resolve(self.inquiry(payment.payment_code))

    def inquiry(self, va: str) -> Any:
        """The inquiry the tests send for ``va``."""
        return make_inquiry(va, partner_service_id=self.partner_service_id)

    # -- the contract ---------------------------------------------------------------------

    def test_factory_builds_a_resolver(self, resolver_options: Mapping[str, Any]) -> None:
        """The factory takes the options; ``resolve`` and every hook present are ``async``; the
        factory's optional ``check(options)`` (used by ``check-config``) accepts them."""
        options_check = getattr(type(self).factory, "check", None)
        if callable(options_check):
            problems = options_check(resolver_options)
            assert not inspect.isawaitable(problems), "check(options) must not be async"
            assert not list(problems or ()), f"check(options) refused working options: {problems}"

        async def check() -> None:
            resolver = self._build(resolver_options)
            assert isinstance(resolver, Resolver), (
                f"{self._factory_name()} returned {type(resolver).__name__}, which has no resolve()"
            )
            for hook in _HOOKS:
                method = getattr(resolver, hook, None)
                if method is not None:
                    assert inspect.iscoroutinefunction(method), (
                        f"{type(resolver).__name__}.{hook} must be an async def"
                    )

        _run(check())

    def test_samples_answer_valid_outcomes(self, resolver_options: Mapping[str, Any]) -> None:
        """Each sample answers a Bill or BillStatus as expected; bills pass validate_bill."""
        expectations = self._expectations()

        async def check() -> None:
            async with self._started(resolver_options) as resolver:
                for va, expected in expectations.items():
                    outcome = await self._resolve_in_time(resolver, va)
                    self._check_outcome(va, outcome, expected)

        _run(check())

    def test_concurrent_inquiries_get_the_same_answers(
        self, resolver_options: Mapping[str, Any]
    ) -> None:
        """Many inquiries at once (more than a small pool) answer as they do one by one."""
        expectations = self._expectations()

        async def check() -> None:
            async with self._started(resolver_options) as resolver:
                vas = list(expectations) * max(1, 24 // len(expectations))
                outcomes = await asyncio.gather(
                    *(self._resolve_in_time(resolver, va) for va in vas)
                )
                for va, outcome in zip(vas, outcomes, strict=True):
                    self._check_outcome(va, outcome, expectations[va])

        _run(check())

    def test_cancelled_inquiries_leave_it_working(
        self, resolver_options: Mapping[str, Any]
    ) -> None:
        """The gateway cancels a call at its timeout; the resolver must answer the next ones.

        A connection given back to a pool mid-query, or a lock never released, shows up here.
        """
        expectations = self._expectations()

        async def check() -> None:
            async with self._started(resolver_options) as resolver:
                for delay in _CANCEL_AFTER:
                    for va in expectations:
                        with contextlib.suppress(TimeoutError, ResolverUnavailable):
                            async with asyncio.timeout(delay):
                                await resolver.resolve(self.inquiry(va))
                for va, expected in expectations.items():
                    outcome = await self._resolve_in_time(resolver, va)
                    self._check_outcome(va, outcome, expected)

        _run(check())

    def test_health_answers_within_a_second(self, resolver_options: Mapping[str, Any]) -> None:
        """``health()`` returns True for a working backend, within a second (``/readyz``)."""

        async def check() -> None:
            async with self._started(resolver_options) as resolver:
                health = self._hook(resolver, "health")
                if health is None:
                    pytest.skip("no health() hook: the gateway counts the resolver healthy")
                healthy = await self._within(health(), _HEALTH_LIMIT, "health()")
                assert healthy is True, f"health() returned {healthy!r} for a working backend"

        _run(check())

    def test_shutdown_is_idempotent(self, resolver_options: Mapping[str, Any]) -> None:
        """``shutdown()`` may run before ``startup()``, and twice after it."""

        async def check() -> None:
            resolver = self._build(resolver_options)
            shutdown = self._hook(resolver, "shutdown")
            if shutdown is None:
                pytest.skip("no shutdown() hook")
            await shutdown()
            await self._startup(resolver)
            await self._resolve_in_time(resolver, next(iter(self._expectations())))
            await shutdown()
            await shutdown()

        _run(check())

    def test_unreachable_backend_raises_resolver_unavailable(
        self, unavailable_resolver_options: Mapping[str, Any] | None
    ) -> None:
        """Backend down: startup() still succeeds, resolve() raises ResolverUnavailable
        (DOKU gets 5042400, nothing is cached) within the timeout, and health() says False."""
        if unavailable_resolver_options is None:
            pytest.skip("set unavailable_options (the backend unreachable) to check this")

        async def check() -> None:
            async with self._started(unavailable_resolver_options) as resolver:
                for va in self._expectations():
                    await self._expect_unavailable(resolver, va)
                health = self._hook(resolver, "health")
                if health is not None:
                    healthy = await self._within(health(), _HEALTH_LIMIT, "health()")
                    assert healthy is False, f"health() returned {healthy!r} with the backend down"

        _run(check())

    def test_slow_backend_raises_resolver_unavailable_in_time(
        self, slow_resolver_options: Mapping[str, Any] | None
    ) -> None:
        """Backend too slow: resolve() gives up by itself with ResolverUnavailable within the
        gateway's timeout, rather than being cancelled with its work left running."""
        if slow_resolver_options is None:
            pytest.skip("set slow_options (the backend answering too late) to check this")

        async def check() -> None:
            async with self._started(slow_resolver_options) as resolver:
                await self._expect_unavailable(resolver, next(iter(self._expectations())))

        _run(check())

    def test_on_payment_is_idempotent(self, resolver_options: Mapping[str, Any]) -> None:
        """A repeated paymentRequestId, one after the other or several at once, is a no-op."""

        async def check() -> None:
            async with self._started(resolver_options) as resolver:
                on_payment = self._hook(resolver, "on_payment")
                if on_payment is None:
                    pytest.skip("no on_payment() hook")
                va, bill = await self._payable(resolver)
                amount = _payable_amount(bill)

                def payment() -> Payment:
                    return make_payment(
                        va, amount, bill=bill, partner_service_id=self.partner_service_id
                    )

                first = payment()
                before = await self.observe_payment(resolver, first)
                await on_payment(first)
                once = await self.observe_payment(resolver, first)
                await on_payment(first)
                again = await self.observe_payment(resolver, first)
                assert again == once, (
                    f"delivering paymentRequestId {first.payment_request_id} a second time "
                    f"changed {once!r} to {again!r}"
                )
                second = payment()
                await asyncio.gather(*(on_payment(second) for _ in range(_DUPLICATES)))
                burst = await self.observe_payment(resolver, second)
                await on_payment(second)
                after = await self.observe_payment(resolver, second)
                assert after == burst, (
                    f"redelivering paymentRequestId {second.payment_request_id} after "
                    f"{_DUPLICATES} concurrent deliveries changed {burst!r} to {after!r}"
                )
                if all(_is_number(value) for value in (before, once, again, burst)):
                    single, concurrent = _change(before, once), _change(again, burst)
                    assert concurrent == single, (
                        f"{_DUPLICATES} concurrent deliveries of one payment changed the state "
                        f"by {concurrent}, one delivery by {single}"
                    )

        _run(check())

    # -- plumbing -------------------------------------------------------------------------

    def _factory_name(self) -> str:
        factory = type(self).factory
        return getattr(factory, "__qualname__", repr(factory))

    def _build(self, options: Mapping[str, Any]) -> Resolver:
        # Read from the class: a plain function stored as a class attribute would otherwise be
        # bound to the test instance.
        return type(self).factory(options)

    def _expectations(self) -> dict[str, Expectation | None]:
        samples = self.samples
        if isinstance(samples, str):
            raise TypeError("samples must be a list or a mapping of VA numbers, not one string")
        expectations: dict[str, Expectation | None] = (
            dict(samples) if isinstance(samples, Mapping) else dict.fromkeys(samples)
        )
        assert expectations, f"{type(self).__name__}: set samples to a few VA numbers"
        return expectations

    @staticmethod
    def _hook(resolver: Resolver, name: str) -> Callable[..., Awaitable[Any]] | None:
        hook: Callable[..., Awaitable[Any]] | None = getattr(resolver, name, None)
        return hook

    async def _startup(self, resolver: Resolver) -> None:
        startup = self._hook(resolver, "startup")
        if startup is not None:
            await startup(make_context(self._factory_name(), {}))

    @contextlib.asynccontextmanager
    async def _started(self, options: Mapping[str, Any]) -> AsyncIterator[Resolver]:
        resolver = self._build(options)
        await self._startup(resolver)
        try:
            yield resolver
        finally:
            shutdown = self._hook(resolver, "shutdown")
            if shutdown is not None:
                await shutdown()

    async def _within(self, awaitable: Awaitable[_T], limit: float, what: str) -> _T:
        started = time.monotonic()
        try:
            async with asyncio.timeout(limit):
                return await awaitable
        except TimeoutError:
            elapsed = time.monotonic() - started
            pytest.fail(f"{what} did not return within {limit:g}s ({elapsed:.2f}s)")

    async def _resolve_in_time(self, resolver: Resolver, va: str) -> Outcome:
        outcome: Outcome = await self._within(
            resolver.resolve(self.inquiry(va)),
            self.timeout,
            f"resolve({va}) (the gateway would answer 5042400)",
        )
        return outcome

    async def _expect_unavailable(self, resolver: Resolver, va: str) -> None:
        started = time.monotonic()
        try:
            outcome = await self._within(
                resolver.resolve(self.inquiry(va)), self.timeout, f"resolve({va})"
            )
        except ResolverUnavailable:
            return
        except Exception as exc:
            pytest.fail(
                f"resolve({va}) raised {type(exc).__name__}: {exc}; a temporary failure must "
                "raise ResolverUnavailable (5042400), anything else answers 5002401"
            )
        pytest.fail(
            f"resolve({va}) answered {outcome!r} after {time.monotonic() - started:.2f}s with "
            "its backend down: DOKU would get (and may cache) a wrong answer"
        )

    async def _payable(self, resolver: Resolver) -> tuple[str, Bill]:
        for va in self._expectations():
            outcome = await self._resolve_in_time(resolver, va)
            if isinstance(outcome, Bill):
                return va, outcome
        pytest.fail("the payment checks need a sample VA that answers a bill")

    @staticmethod
    def _check_outcome(va: str, outcome: object, expected: Expectation | None) -> None:
        if isinstance(outcome, Bill):
            try:
                validate_bill(outcome)
            except ResolverError as exc:
                pytest.fail(f"resolve({va}) answered a bill the gateway refuses (5002401): {exc}")
            if outcome.cache_ttl is not None:
                assert isinstance(outcome.cache_ttl, int | float) and outcome.cache_ttl >= 0, (
                    f"resolve({va}): cache_ttl must be a non-negative number of seconds"
                )
        elif not isinstance(outcome, BillStatus):
            pytest.fail(
                f"resolve({va}) returned {type(outcome).__name__}; it must return a Bill or a "
                "BillStatus (or raise ResolverUnavailable)"
            )
        if expected is None:
            return
        if expected is Bill:
            assert isinstance(outcome, Bill), f"resolve({va}) answered {outcome!r}, not a bill"
        else:
            assert outcome == expected, f"resolve({va}) answered {outcome!r}, not {expected!r}"


def _payable_amount(bill: Bill) -> Decimal:
    if bill.trx_type == "C":
        return bill.amount
    low = bill.min_amount if bill.min_amount is not None else Decimal("0.01")
    high = bill.max_amount if bill.max_amount is not None else max(low, Decimal("10000.00"))
    if low <= bill.amount <= high and bill.amount > 0:
        return bill.amount
    return max(low, min(Decimal("10000.00"), high))


def _is_number(value: object) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def _change(before: object, after: object) -> Decimal:
    return Decimal(str(after)) - Decimal(str(before))


def resolver_contract(
    factory: ResolverFactory,
    options: Mapping[str, Any],
    samples: Mapping[str, Expectation] | Sequence[str],
    **settings: Any,
) -> type[ResolverContract]:
    """A :class:`ResolverContract` subclass in one line: ``TestMine = resolver_contract(…)``.

    ``settings`` sets the other class attributes (``unavailable_options``, ``slow_options``,
    ``timeout``, ``partner_service_id``).
    """
    known = {"unavailable_options", "slow_options", "timeout", "partner_service_id"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown contract setting {unknown[0]!r}")
    attributes = {
        # staticmethod: a function factory must not become a method of the test class.
        "factory": staticmethod(factory),
        "options": options,
        "samples": samples,
        **settings,
    }
    return type("ResolverContractSuite", (ResolverContract,), attributes)
