"""Resolvers the tests load into real gateway processes by import string."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from gateway import Bill, BillStatus, Inquiry


class CountingResolver:
    """Appends one line per call to ``options["log"]`` (O_APPEND: safe across processes)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.log = str(options["log"])
        self.delay = float(options.get("delay", 0.0))

    async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()} {inquiry.payment_code}\n".encode())
        finally:
            os.close(fd)
        await asyncio.sleep(self.delay)
        return Bill(
            name="Counted", amount=Decimal("12345.00"), trx_id="INV-" + inquiry.payment_code
        )


class PaymentCountingResolver(CountingResolver):
    """Also appends one line per on_payment call to ``options["payments"]``."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.payments = str(options["payments"])

    async def on_payment(self, payment: Any) -> None:
        fd = os.open(self.payments, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()} {payment.payment_request_id}\n".encode())
        finally:
            os.close(fd)


class HangingResolver(CountingResolver):
    """Never answers for VA numbers ending in ``options["hang"]`` (a stuck row lock, a dead
    shard); answers everything else at once. Counts calls like :class:`CountingResolver`."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.hang = str(options["hang"])

    async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
        bill = await super().resolve(inquiry)
        if inquiry.payment_code.endswith(self.hang):
            await asyncio.Event().wait()  # forever: only the gateway's timeout ends it
        return bill
