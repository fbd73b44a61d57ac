"""The gateway's exception tree.

    GatewayError
    ├── ConfigError          a setting is missing or invalid (raised at start, never per request)
    ├── SnapError            a request is answered with a SNAP error code
    │   ├── SignatureError   a signature or token did not verify
    │   └── FieldError       a request field breaks a SNAP rule (named, with the reason)
    ├── ResolverError        a resolver plugin misbehaved
    │   └── ResolverUnavailable  the merchant's backend is temporarily unavailable
    └── DokuError            DOKU's API refused a call of ours (responseCode kept)
        ├── DokuUnavailable  DOKU could not be reached, timed out or answered 5xx
        └── DokuProtocolError  DOKU answered something that is not its documented shape

Resolver authors raise :class:`ResolverUnavailable`; everything else is raised by the gateway.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "DokuError",
    "DokuProtocolError",
    "DokuUnavailable",
    "FieldError",
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


class FieldError(SnapError):
    """A request field breaks a SNAP rule: ``field`` is its dotted path, ``reason`` says why.

    ``case`` is ``Case.MISSING_MANDATORY_FIELD`` or ``Case.INVALID_FIELD_FORMAT``, so a server
    answers it as ``400xx02``/``400xx01``; the DOKU client raises it before sending anything.
    """

    def __init__(self, case: object, field: str, reason: str) -> None:
        super().__init__(case, field, reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ResolverError(GatewayError):
    """A resolver returned something the gateway cannot send to DOKU."""


class ResolverUnavailable(ResolverError):
    """Raised by a resolver when the bill cannot be looked up right now.

    The gateway answers ``5042400`` and caches nothing, so DOKU's next attempt asks again.
    """


class DokuError(GatewayError):
    """DOKU refused one of our calls (check status, create/update/delete VA, token).

    ``status`` is the HTTP status (``None`` when no answer arrived), ``response_code`` DOKU's
    seven-digit ``responseCode`` when it sent one, ``body`` its whole JSON answer if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        response_code: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.response_code = response_code
        self.body = body


class DokuUnavailable(DokuError):
    """DOKU could not be reached, timed out, or answered 5xx (after the retries that were safe).

    For create/update/delete the outcome is unknown: ask check status before sending again.
    """


class DokuProtocolError(DokuError):
    """DOKU's answer is not JSON or lacks what its API documents (``responseCode``, a token…)."""
