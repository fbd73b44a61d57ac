"""Everything a request needs, built once per app from :class:`Settings`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from .._types import Clock
from ..config import Credentials, Settings
from ..metrics import Count, Metrics
from ..resolvers.dispatch import ResolverSet
from ..resolvers.singleflight import Fetcher
from ..snap.signature import SymmetricSigner, verify_asymmetric_any
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
    #: DOKU's public keys for the token call, labelled ``current`` / ``next``.
    doku_keys: tuple[tuple[str, rsa.RSAPublicKey], ...] = field(init=False)
    timestamp: TimestampHeader = field(init=False)
    fetcher: Fetcher = field(init=False)
    # Merchant public keys replaced by a reload, each with the time until which the tokens
    # it signed may still be presented (their lifetime plus the leeway).
    _retired: tuple[tuple[rsa.RSAPublicKey, float], ...] = field(init=False, default=())
    _secret_matches: dict[str, Count] = field(init=False)
    _doku_key_matches: dict[str, Count] = field(init=False)

    def __post_init__(self) -> None:
        matches = self.metrics.key_matches
        self._secret_matches = {k: matches.labels("client_secret", k) for k in ("current", "next")}
        self._doku_key_matches = {
            k: matches.labels("doku_public_key", k) for k in ("current", "next")
        }
        self.timestamp = TimestampHeader(self.clock)
        self.fetcher = Fetcher(self.resolvers, self.state, self.settings.cache)
        self._apply(self.settings.credentials)

    def _apply(self, creds: Credentials) -> None:
        security = self.settings.security
        self.signer = SymmetricSigner.from_secret(creds.client_secret, creds.client_secret_next)
        doku = [("current", creds.doku_public_key)]
        if creds.doku_public_key_next is not None:
            doku.append(("next", creds.doku_public_key_next))
        self.doku_keys = tuple(doku)
        self.issuer = TokenIssuer(
            creds.merchant_private_key,
            creds.client_id,
            security.token_issuer,
            security.token_lifetime,
        )
        keys: tuple[rsa.RSAPublicKey, ...] = (
            creds.merchant_public_key,
            *(key for key, _ in self._retired),
        )
        if security.accept_doku_tokens:
            keys += tuple(key for _, key in self.doku_keys)
        self.verifier = TokenVerifier(keys, creds.client_id, security.token_leeway)

    def use_credentials(self, creds: Credentials) -> None:
        """Switch to reloaded credentials (a rotation, see SECURITY.md) between two requests.

        The token cache starts afresh, so every token is checked against the new keys once.
        Tokens signed with a replaced merchant key stay valid until they expire."""
        old = self.settings.credentials.merchant_public_key
        if old.public_numbers() != creds.merchant_public_key.public_numbers():
            security = self.settings.security
            until = self.clock() + security.token_lifetime + security.token_leeway
            self._retired = (*self._retired, (old, until))
        self.settings = self.settings.replace(credentials=creds)
        self._apply(creds)

    def expire_retired_keys(self) -> None:
        """Stop accepting tokens of replaced merchant keys once they have all expired."""
        now = self.clock()
        kept = tuple((key, until) for key, until in self._retired if until > now)
        if len(kept) != len(self._retired):
            self._retired = kept
            self._apply(self.settings.credentials)

    def verify_signature(
        self,
        method: str,
        path: str,
        token: str,
        raw: bytes,
        document: Any,
        timestamp: str,
        signature: str,
        raw_digest: str | None = None,
    ) -> str | None:
        """The body form whose X-SIGNATURE verified (counted by secret), or ``None``."""
        found = self.signer.match(
            method, path, token, raw, document, timestamp, signature, raw_digest
        )
        if found is None:
            return None
        self._secret_matches[found.key].inc()
        return found.form

    def verify_token_request(self, client_id: str, timestamp: str, signature: str) -> bool:
        """Whether DOKU (either of its keys during a rotation) signed a token request."""
        key = verify_asymmetric_any(self.doku_keys, client_id, timestamp, signature)
        if key is None:
            return False
        self._doku_key_matches[key].inc()
        return True

    async def invalidate(self, payment_code: str) -> None:
        """Forget the cached answer for ``payment_code`` (spaces are ignored)."""
        await self.state.invalidate(payment_code.replace(" ", ""))
