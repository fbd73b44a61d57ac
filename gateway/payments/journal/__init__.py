"""The payment journal: every accepted notification is recorded here before DOKU is
acknowledged, and delivered to the merchant from here. One interface (:mod:`.base`), one module
per backend (:mod:`.file`, :mod:`.redis`), chosen by :func:`create_journal`. Internal."""

from __future__ import annotations

from ...config import Settings
from .base import DeadLetter, Journal, JournalEntry, Lease

__all__ = ["DeadLetter", "Journal", "JournalEntry", "Lease", "create_journal"]


def create_journal(settings: Settings) -> Journal:
    """The payment journal: Redis Streams when configured (or ``auto`` with a Redis cache),
    else fsync'd files in ``payment.journal_dir`` (one process)."""
    if settings.journal_on_redis:
        from .redis import RedisJournal

        return RedisJournal.from_settings(settings.cache, settings.payment)
    from .file import FileJournal

    payment = settings.payment
    return FileJournal(payment.journal_dir, keep_delivered=payment.journal_keep_delivered)
