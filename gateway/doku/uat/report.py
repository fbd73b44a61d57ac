"""What a UAT run found: the target, the sample VAs, each scenario's exchanges and verdict."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from ...config import PathSettings
from ...exceptions import GatewayError


class GatewayUnreachable(GatewayError):
    """Nothing answered at the gateway's URL (connection refused, DNS, TLS, timeout)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"nothing answers at {url} ({reason})")
        self.url = url
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SampleVAs:
    """One VA number per outcome the merchant's resolver knows; ``None`` skips its scenarios.

    ``partner_service_id`` is the BIN/prefix that starts each VA (default: its first 5 digits).
    """

    payable: str | None = None
    open: str | None = None
    paid: str | None = None
    expired: str | None = None
    unknown: str | None = None
    partner_service_id: str | None = None


def demo_samples() -> SampleVAs:
    """The demo resolver's outcomes (``gateway.resolvers.demo``). The payable VA is fresh each
    run: the payment scenario makes the demo resolver remember it as paid."""
    return SampleVAs(
        payable=f"8889900{secrets.randbelow(10**6):06d}",
        open="8889911600001",
        paid="8889911700001",
        expired="8889911800001",
        unknown="8889911900001",
        partner_service_id="88899",
    )


@dataclass(frozen=True, slots=True)
class UatTarget:
    """Where the gateway is and what DOKU would know about it.

    ``url`` is the base DOKU calls: the registered Inquiry URL without ``paths.inquiry``; its
    path (an ingress prefix) is part of every request and every signed path. Without
    ``doku_private_key`` (the gateway trusts DOKU's real key) tokens are minted with
    ``merchant_private_key`` instead, and only the token call's refusal is checked.
    ``gateway_path_prefix`` (the gateway's ``http.path_prefix``) only helps name causes.
    """

    url: str
    client_id: str
    client_secret: str = field(repr=False)
    samples: SampleVAs
    doku_private_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)
    merchant_private_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)
    paths: PathSettings = field(default_factory=PathSettings)
    gateway_path_prefix: str = ""
    token_issuer: str = "doku-gateway"
    timestamp_skew: float = 300.0
    channel: str = "VIRTUAL_ACCOUNT_BTN"
    payments: bool = True
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its answer, safe to print: no secret, tokens and signatures truncated."""

    method: str
    path: str
    request_headers: Mapping[str, str]
    request_body: str
    status: int | None = None
    response_headers: Mapping[str, str] = field(default_factory=dict)
    response_body: Any = None
    elapsed_ms: float | None = None
    error: str | None = None


Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """How one scenario went; ``cause`` names the likely reason of a failure."""

    id: str
    title: str
    expected: str
    status: Status
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    cause: str | None = None
    exchanges: tuple[Exchange, ...] = ()


@dataclass(frozen=True, slots=True)
class UatReport:
    """Every scenario's result, the gateway clock's offset from ours, and the likely causes."""

    url: str
    client_id: str
    results: tuple[ScenarioResult, ...]
    clock_offset: float | None = None

    @property
    def passed(self) -> bool:
        return all(result.status != "fail" for result in self.results)

    @property
    def causes(self) -> tuple[str, ...]:
        """The distinct causes of the failures, in scenario order."""
        seen: dict[str, None] = {}
        for result in self.results:
            if result.status == "fail" and result.cause:
                seen.setdefault(result.cause, None)
        return tuple(seen)

    def counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "skip": 0}
        for result in self.results:
            counts[result.status] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "client_id": self.client_id,
            "passed": self.passed,
            "counts": self.counts(),
            "clock_offset_seconds": self.clock_offset,
            "causes": list(self.causes),
            "scenarios": [asdict(result) for result in self.results],
        }
