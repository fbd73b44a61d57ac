"""The contract between the gateway and a merchant's resolver plugin.

A resolver answers one question: what is the bill behind this VA number? ::

    from decimal import Decimal
    from gateway import Bill, BillStatus, Inquiry, ResolverUnavailable

    class MyResolver:
        def __init__(self, options):
            self.dsn = options["dsn"]

        async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
            row = await lookup(inquiry.payment_code)      # the merchant's own code
            if row is None:
                return BillStatus.NOT_FOUND
            return Bill(name=row.name, amount=Decimal(row.amount), trx_id=row.invoice)

It is found by the entry point group ``doku_gateway.resolvers`` or by an import string
``package.module:factory``; the factory is called once with the ``options`` table of its
``[[resolvers]]`` config. The optional hooks ``startup(context)``, ``health()`` and
``shutdown()`` run from the app's lifespan and ``/readyz``; the optional
``on_payment(payment)`` receives every payment DOKU notifies for the resolver's VAs, at least
once, in order per VA (it must be idempotent on ``payment.payment_request_id``; raise to have it
retried).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..snap.models import Bill, BillStatus, Inquiry, Outcome, Payment

__all__ = [
    "Bill",
    "BillStatus",
    "Inquiry",
    "Outcome",
    "Resolver",
    "ResolverContext",
    "ResolverFactory",
]


@runtime_checkable
class Resolver(Protocol):
    """What a resolver plugin must implement; everything else is optional."""

    async def resolve(self, inquiry: Inquiry) -> Outcome:
        """Return the bill, or why there is none.

        Raise :class:`~gateway.ResolverUnavailable` when the lookup cannot be done right now
        (database down, upstream timeout): DOKU then gets ``5042400`` and nothing is cached.
        """
        ...


@runtime_checkable
class PaymentHook(Protocol):
    """The optional payment hook of a resolver."""

    async def on_payment(self, payment: Payment) -> None:
        """Record ``payment`` in the merchant's system (top up, mark the invoice paid).

        Called at least once per payment, in order per VA; must be idempotent on
        ``payment.payment_request_id``. ``payment.flags`` names broken bill rules
        (``amount_differs``, ``below_min``, ``above_max``, ``bill_already_paid`` …): such payments
        are delivered anyway and the merchant decides. Raise to have the delivery retried.
        """
        ...


@dataclass(frozen=True, slots=True)
class ResolverContext:
    """What the gateway hands a resolver's ``startup`` hook: a narrow facade, not internals."""

    name: str
    options: Mapping[str, Any]
    #: Forget the cached answer for a payment code (a bill changed or was paid).
    invalidate: Callable[[str], Awaitable[None]]
    logger: logging.Logger


#: ``factory(options) -> resolver``; a class taking ``options`` is the usual factory.
ResolverFactory = Callable[[Mapping[str, Any]], Resolver]
