"""Everything a request needs, built once per app from :class:`Settings`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from .._types import Clock
from ..config import Settings
from ..metrics import Metrics
from ..resolvers.dispatch import ResolverSet
from ..resolvers.singleflight import Fetcher
from ..snap.signature import SymmetricSigner
from ..snap.tokens import TokenIssuer, TokenVerifier
from ..state.base import StateBackend
from .timestamp import TimestampHeader

__all__ = ["Runtime"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    resolvers: ResolverSet
    state: StateBackend
    metrics: Metrics
    clock: Clock = time.time
    signer: SymmetricSigner = field(init=False)
    verifier: TokenVerifier = field(init=False)
    issuer: TokenIssuer = field(init=False)
    timestamp: TimestampHeader = field(init=False)
    fetcher: Fetcher = field(init=False)

    def __post_init__(self) -> None:
        creds = self.settings.credentials
        security = self.settings.security
        self.signer = SymmetricSigner.from_secret(creds.client_secret)
        keys: tuple[rsa.RSAPublicKey, ...] = (creds.merchant_public_key,)
        if security.accept_doku_tokens:
            keys += (creds.doku_public_key,)
        self.verifier = TokenVerifier(keys, creds.client_id, security.token_leeway)
        self.issuer = TokenIssuer(
            creds.merchant_private_key,
            creds.client_id,
            security.token_issuer,
            security.token_lifetime,
        )
        self.timestamp = TimestampHeader(self.clock)
        self.fetcher = Fetcher(self.resolvers, self.state, self.settings.cache)

    async def invalidate(self, payment_code: str) -> None:
        """Forget the cached answer for ``payment_code`` (spaces are ignored)."""
        await self.state.invalidate(payment_code.replace(" ", ""))
