"""DOKU's UAT, run by the merchant: act as DOKU against a deployed gateway and check each answer.

:func:`run_uat` sends what DOKU's UAT sends, over the whole network path (ingress, proxies): the
token call, an inquiry per outcome, open and limit amounts, replays, a bad signature, an expired
token, a stale timestamp, a pretty-printed and a non-ASCII body, a payment notification and its
repeat. Each scenario records what was sent and received (tokens and signatures truncated, the
secret and keys never) and, when it fails, the likely cause. No command-line code here: the
``doku-gateway uat`` command renders the :class:`UatReport`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from .report import (
    Exchange,
    GatewayUnreachable,
    SampleVAs,
    ScenarioResult,
    UatReport,
    UatTarget,
    demo_samples,
)
from .scenarios import _Run

__all__ = [
    "Exchange",
    "GatewayUnreachable",
    "SampleVAs",
    "ScenarioResult",
    "UatReport",
    "UatTarget",
    "demo_samples",
    "run_uat",
]


async def run_uat(target: UatTarget) -> UatReport:
    """Run every scenario against ``target``, in order (the payment last: it changes the payable
    bill). Raises :class:`GatewayUnreachable` when the first request gets no answer at all, and
    ``ValueError`` without a payable sample VA or any private key."""
    origin = urlsplit(target.url)
    base_url = f"{origin.scheme}://{origin.netloc}"
    async with httpx.AsyncClient(base_url=base_url, timeout=target.timeout) as client:
        return await _Run(target, client).run()
