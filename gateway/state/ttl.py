"""How long an outcome may be reused: the TTL policy every state backend shares.

Only resolver *outcomes* are cached, never rendered answers: an answer echoes per-request strings
(``inquiryRequestId``) and must be rendered for each request anyway."""

from __future__ import annotations

import time
from datetime import datetime

from ..config import CacheSettings
from ..snap.models import Bill, BillStatus, Outcome


def ttl_for(outcome: Outcome, settings: CacheSettings, now: float | None = None) -> float:
    """Seconds ``outcome`` may be reused; ``0`` means do not cache.

    A bill lives min(resolver hint, ``bill_ttl``) and never past its own expiry; not-found is
    cached briefly (the merchant may be creating the bill right now); paid and expired longer.
    """
    if isinstance(outcome, Bill):
        ttl = settings.bill_ttl
        if outcome.cache_ttl is not None:
            ttl = min(ttl, max(outcome.cache_ttl, 0.0))
        if outcome.expires_at is not None:
            moment = time.time() if now is None else now
            ttl = min(ttl, _seconds_until(outcome.expires_at, moment))
        return max(ttl, 0.0)
    if outcome is BillStatus.NOT_FOUND:
        return settings.not_found_ttl
    return settings.final_ttl


def _seconds_until(moment: datetime, now: float) -> float:
    return moment.timestamp() - now
