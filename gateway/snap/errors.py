"""The protocol's own errors, and the root of the gateway's exception tree.

``GatewayError`` lives here so that ``snap/`` owns its errors without importing the rest of the
package; :mod:`gateway.exceptions` re-exports all of them with the other branches of the tree.
"""

from __future__ import annotations

from .codes import Case

__all__ = ["FieldError", "GatewayError", "SignatureError", "SnapError"]


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class SnapError(GatewayError):
    """A request fails with a SNAP response code.

    ``case`` is a :class:`gateway.snap.codes.Case`; the service code (24 for inquiry,
    73 for the token call, …) is added by the handler that answers, so the same validation code
    serves every endpoint. ``field`` is put into the message where the case names one.
    """

    def __init__(self, case: Case, field: str | None = None, detail: str | None = None) -> None:
        super().__init__(field or detail or str(case))
        self.case = case
        self.field = field
        self.detail = detail


class SignatureError(SnapError):
    """A token or X-SIGNATURE did not verify; ``reason`` is a short metric label."""

    def __init__(self, case: Case, reason: str) -> None:
        super().__init__(case, detail=reason)
        self.reason = reason


class FieldError(SnapError):
    """A request field breaks a SNAP rule: ``field`` is its dotted path, ``reason`` says why.

    ``case`` is ``Case.MISSING_MANDATORY_FIELD`` or ``Case.INVALID_FIELD_FORMAT``, so a server
    answers it as ``400xx02``/``400xx01``; the DOKU client raises it before sending anything.
    """

    def __init__(self, case: Case, field: str, reason: str) -> None:
        super().__init__(case, field, reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"
