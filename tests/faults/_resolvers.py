"""Resolvers the journal fault tests load into real gateway processes by import string.

Every hook call that returns appends ``<pid> <paymentRequestId>`` to ``options["payments"]``
(O_APPEND: one line a call, across processes); a test counts them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from tests.sample_resolvers import PaymentCountingResolver


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class HeldResolver(PaymentCountingResolver):
    """on_payment waits while the file ``options["hold"]`` exists, then records the call."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.hold = str(options["hold"])

    def held(self) -> bool:
        return os.path.exists(self.hold)

    async def on_payment(self, payment: Any) -> None:
        while True:
            if not self.held():
                break
            await asyncio.sleep(0.02)
        await super().on_payment(payment)


class FlakyResolver(PaymentCountingResolver):
    """on_payment fails while the file ``options["fail"]`` exists (each failure is a line in
    ``options["failures"]``), then records the call."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.fail = str(options["fail"])
        self.failures = str(options["failures"])

    def failing(self) -> bool:
        return os.path.exists(self.fail)

    async def on_payment(self, payment: Any) -> None:
        if self.failing():
            _append(self.failures, f"{os.getpid()} {payment.payment_request_id}\n")
            raise ConnectionError("merchant database unavailable")
        await super().on_payment(payment)
