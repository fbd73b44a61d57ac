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

from collections.abc import Sequence
from typing import Any

from .snap.errors import FieldError, GatewayError, SignatureError, SnapError

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


class ConfigError(GatewayError):
    """One or more configuration values are missing or invalid.

    ``key`` names the first (``cache.url``); ``problems`` holds every ``(key, message)`` found,
    so a person fixes them all in one round. ``str()`` is one line for one problem, one line
    per problem otherwise.
    """

    def __init__(self, key: str, message: str, *, problems: Sequence[tuple[str, str]] = ()) -> None:
        self.problems: tuple[tuple[str, str], ...] = tuple(problems) or ((key, message),)
        self.key = self.problems[0][0]
        super().__init__("\n".join(f"{k}: {m}" for k, m in self.problems))

    @classmethod
    def collected(cls, problems: Sequence[tuple[str, str]]) -> ConfigError:
        """One error carrying every problem of ``problems`` (not empty)."""
        key, message = problems[0]
        return cls(key, message, problems=problems)


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
