"""The B2B access tokens the merchant issues to DOKU (spec §6.3, §14.2).

Tokens are RS256 JWTs signed with the merchant private key and verified with the merchant public
key, algorithm pinned so that ``alg: none`` and HS256-with-the-public-key tricks cannot pass. DOKU
reuses a token for its whole lifetime, so a verified token is remembered until its ``exp``: the
RSA check runs once per token, not once per inquiry.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["IssuedToken", "TokenIssuer", "TokenVerifier", "encode_jwt"]

_ALGORITHM = "RS256"


def encode_jwt(claims: Mapping[str, Any], private_key: rsa.RSAPrivateKey) -> str:
    """RS256-sign ``claims`` in their own order (header ``{"alg":"RS256","typ":"JWT"}``)."""
    return jwt.encode(dict(claims), private_key, algorithm=_ALGORITHM)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    """Issues tokens with ``iss``, ``iat``, ``exp``, ``clientId`` and a random ``jti``."""

    private_key: rsa.RSAPrivateKey
    client_id: str
    issuer: str = "doku-gateway"
    lifetime: int = 900

    def issue(self, now: float | None = None) -> IssuedToken:
        issued_at = int(time.time() if now is None else now)
        expires_at = issued_at + self.lifetime
        claims = {
            "iss": self.issuer,
            "iat": issued_at,
            "exp": expires_at,
            "clientId": self.client_id,
            "jti": secrets.token_hex(12),
        }
        return IssuedToken(encode_jwt(claims, self.private_key), self.lifetime, expires_at)


@dataclass(slots=True)
class TokenVerifier:
    """Verifies Bearer tokens, caching each good one until it expires.

    ``keys`` are tried in order: the merchant public key, then (only when the operator enabled
    DOKU-issued tokens, spec §19 Q3) DOKU's public key. ``client_id``, when set, must equal the
    token's ``clientId`` claim (spec §6.3).
    """

    keys: tuple[rsa.RSAPublicKey, ...]
    client_id: str | None = None
    leeway: float = 60.0
    max_cached: int = 10_000
    _cache: OrderedDict[str, float] = field(default_factory=OrderedDict, repr=False)

    def verify(self, token: str, now: float | None = None) -> bool:
        """True when ``token`` is a currently valid token of ours."""
        moment = time.time() if now is None else now
        expires = self._cache.get(token)
        if expires is not None:
            if moment <= expires + self.leeway:
                return True
            del self._cache[token]
            return False
        claims = self._decode(token, moment)
        if claims is None:
            return False
        self._remember(token, float(claims["exp"]))
        return True

    def _decode(self, token: str, moment: float) -> dict[str, Any] | None:
        for key in self.keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[_ALGORITHM],
                    leeway=self.leeway,
                    options={
                        "require": ["exp"],
                        "verify_exp": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                    },
                )
            except jwt.PyJWTError:
                continue
            exp = claims.get("exp")
            # PyJWT's own exp/iat/nbf checks read the wall clock; comparing here keeps ``now``
            # (the app's injectable clock) the only notion of time.
            if not isinstance(exp, int | float) or moment > exp + self.leeway:
                return None
            for name in ("iat", "nbf"):
                value = claims.get(name)
                if value is not None and (
                    not isinstance(value, int | float) or value > moment + self.leeway
                ):
                    return None
            owner = claims.get("clientId")
            if self.client_id is not None and owner != self.client_id:
                return None
            return claims
        return None

    def _remember(self, token: str, expires: float) -> None:
        cache = self._cache
        cache[token] = expires
        if len(cache) > self.max_cached:
            cache.popitem(last=False)
