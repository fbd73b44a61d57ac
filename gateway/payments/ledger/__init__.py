"""The inquiry ledger: which VAs were answered with a payable bill, and when (a hint for
reconciliation). One interface (:mod:`.base`), one module per backend. Internal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...config import Settings
from .base import InquiryLedger, LedgerEntry

if TYPE_CHECKING:
    from ..._redis.batch import Batcher

__all__ = ["InquiryLedger", "LedgerEntry", "create_ledger"]


def create_ledger(settings: Settings, batch: Batcher | None = None) -> InquiryLedger:
    """Redis when the payment journal is on Redis, else ``payment.journal_dir``. ``batch``: the
    state backend's pipeline on the same Redis, for the ledger's writes to ride in."""
    if settings.journal_on_redis:
        from .redis import RedisLedger  # imported lazily: embedded mode needs no Redis

        return RedisLedger.from_settings(settings.cache, batch)
    from .file import FileLedger

    return FileLedger(settings.payment.journal_dir)
