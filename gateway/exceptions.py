"""The gateway's exception tree.

    GatewayError
    ├── ConfigError          a setting is missing or invalid (raised at start, never per request)
    ├── SnapError            a request is answered with a SNAP error code
    │   └── SignatureError   a signature or token did not verify
    └── ResolverError        a resolver plugin misbehaved
        └── ResolverUnavailable  the merchant's backend is temporarily unavailable

Resolver authors raise :class:`ResolverUnavailable`; everything else is raised by the gateway.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GatewayError",
    "ResolverError",
    "ResolverUnavailable",
    "SignatureError",
    "SnapError",
]


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A configuration value is missing or invalid; ``key`` names it (``cache.url``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class SnapError(GatewayError):
    """A request fails with a SNAP response code.

    ``case`` is a member of :class:`gateway.snap.codes.Case`; the service code (24 for inquiry,
    73 for the token call, …) is added by the handler that answers, so the same validation code
    serves every endpoint. ``field`` is put into the message where the case names one.
    """

    def __init__(self, case: object, field: str | None = None, detail: str | None = None) -> None:
        super().__init__(field or detail or str(case))
        self.case = case
        self.field = field
        self.detail = detail


class SignatureError(SnapError):
    """A token or X-SIGNATURE did not verify; ``reason`` is a short metric label."""

    def __init__(self, case: object, reason: str) -> None:
        super().__init__(case, detail=reason)
        self.reason = reason


class ResolverError(GatewayError):
    """A resolver returned something the gateway cannot send to DOKU."""


class ResolverUnavailable(ResolverError):
    """Raised by a resolver when the bill cannot be looked up right now.

    The gateway answers ``5042400`` and caches nothing, so DOKU's next attempt asks again.
    """
