"""Checks shared by every transaction call DOKU makes (inquiry, payment notification): headers,
X-TIMESTAMP, the Bearer token, the body, X-SIGNATURE, and the replay key.

Cheapest and least revealing first, so an unauthenticated caller learns nothing and cannot burn an
X-EXTERNAL-ID: the replay guard is consulted only by the caller, after all of this passed.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, NamedTuple

from ...log import get_logger
from ...snap.answers import error_body, json_bytes
from ...snap.codes import Case, Service
from ...snap.diagnostics import ReceivedRequest, diagnose_clock, diagnose_signature
from ...snap.errors import SignatureError, SnapError
from ...snap.fields import parse_json, printable_ascii
from ...snap.timestamps import epoch_of, seconds_to_wib_midnight, wib_day_number
from ...state.base import Begin, Claim
from ..asgi import RawRequest, Send, send_json
from ..runtime import Runtime

__all__ = [
    "ClockSkew",
    "Verified",
    "admit",
    "answer",
    "claim",
    "refuse",
    "replay_ttl",
    "verify_transaction",
]

_log = get_logger("transaction")


class Verified(NamedTuple):
    """A transaction request whose token and signature verified."""

    raw: bytes
    document: dict[str, Any]
    replay_key: str
    fingerprint: str


async def verify_transaction(
    runtime: Runtime, request: RawRequest, endpoint: str, path: str
) -> Verified:
    """Checks shared by the inquiry and the payment notification, up to the replay guard."""
    rt = runtime
    http = rt.settings.http
    raw = await request.body(http.max_body_bytes, http.body_timeout)
    timestamp = request.require(b"x-timestamp", "X-TIMESTAMP")
    signature = request.require(b"x-signature", "X-SIGNATURE")
    authorization = request.require(b"authorization", "Authorization")
    partner_id = request.require(b"x-partner-id", "X-PARTNER-ID")
    external_id = request.require(b"x-external-id", "X-EXTERNAL-ID")
    if not printable_ascii(external_id):
        raise SnapError(Case.INVALID_FIELD_FORMAT, "X-EXTERNAL-ID")
    if len(partner_id) > 64:
        raise SnapError(Case.INVALID_FIELD_FORMAT, "X-PARTNER-ID")
    now = rt.clock()
    try:
        moment = epoch_of(timestamp)
    except ValueError:
        raise SnapError(Case.INVALID_FIELD_FORMAT, "X-TIMESTAMP") from None
    if abs(moment - now) > rt.settings.security.timestamp_skew:
        if rt.settings.security.signature_diagnostics:
            _log_clock(rt, endpoint, timestamp, now)
        raise ClockSkew(moment - now)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise SignatureError(Case.INVALID_TOKEN, "token_malformed")
    if not rt.verifier.verify(token, now):
        raise SignatureError(Case.INVALID_TOKEN, "token_invalid")
    document = parse_json(raw, http.max_json_depth)
    query = request.query
    signed_path = http.path_prefix + path + (f"?{query}" if query else "")
    # One hash of the body serves the signature check and the replay fingerprint.
    digest = hashlib.sha256(raw).hexdigest()
    matched = rt.verify_signature(
        request.method, signed_path, token, raw, document, timestamp, signature, digest
    )
    if matched is None:
        if rt.settings.security.signature_diagnostics:
            _log_signature(rt, request, endpoint, path, authorization, token, raw, document, now)
        if rt.settings.security.signature_mode == "enforce":
            raise SignatureError(Case.UNAUTHORIZED, "Signature")
        rt.metrics.signature_failures.labels(endpoint, "signature_logged").inc()
        _log.warning("X-SIGNATURE did not verify on %s; accepted (log-only mode)", endpoint)
    # WIB day of the request: X-EXTERNAL-ID is unique per partner per day (BI), so the day is
    # part of the key and the claim lives until the end of that day plus a margin.
    day = wib_day_number(now)
    replay_key = f"{endpoint}:{partner_id}:{day}:{external_id}"
    return Verified(raw, document, replay_key, digest)


def _log_clock(runtime: Runtime, endpoint: str, timestamp: str, now: float) -> None:
    """``security.signature_diagnostics``: say why X-TIMESTAMP fell outside the window."""
    diagnosis = diagnose_clock(timestamp, now, runtime.settings.security.timestamp_skew)
    _log.warning("%s: X-TIMESTAMP refused; diagnosis: %s", endpoint, diagnosis.message)


def _log_signature(
    runtime: Runtime,
    request: RawRequest,
    endpoint: str,
    path: str,
    authorization: str,
    token: str,
    raw: bytes,
    document: dict[str, Any],
    now: float,
) -> None:
    """``security.signature_diagnostics``: one log line naming the likeliest sender mistake.

    Only on the failure path, after the token verified, so a caller without a valid token
    cannot make the gateway search. The line names variants, never the secret, token or
    signature."""
    received = ReceivedRequest(
        method=request.method,
        path=path,
        query=request.query,
        prefix=runtime.settings.http.path_prefix,
        authorization=authorization,
        token=token,
        raw=raw,
        document=document,
        timestamp=request.header(b"x-timestamp") or "",
        signature=request.header(b"x-signature") or "",
        host=request.header(b"host"),
        forwarded_prefix=request.header(b"x-forwarded-prefix"),
    )
    signer = runtime.signer
    diagnosis = diagnose_signature(signer.secret, received, now)
    if diagnosis.causes == ("secret",) and signer.next_secret is not None:
        # During a rotation the sender may make its mistake with the next secret.
        with_next = diagnose_signature(signer.next_secret, received, now)
        if with_next.causes != ("secret",):
            diagnosis = with_next
    _log.warning("%s: X-SIGNATURE did not verify; diagnosis: %s", endpoint, diagnosis.message)


def replay_ttl(runtime: Runtime) -> float:
    """Seconds from now to the end of the WIB day, plus the configured margin."""
    return seconds_to_wib_midnight(runtime.clock()) + runtime.settings.cache.replay_margin


async def answer(runtime: Runtime, send: Send, status: int, document: dict[str, Any]) -> None:
    await send_json(send, status, json_bytes(document), runtime.timestamp())


class ClockSkew(SnapError):
    """X-TIMESTAMP outside the allowed window; ``offset`` (seconds, sender minus us) is logged,
    never sent."""

    def __init__(self, offset: float) -> None:
        super().__init__(Case.INVALID_FIELD_FORMAT, "X-TIMESTAMP")
        self.offset = offset


async def refuse(
    runtime: Runtime,
    send: Send,
    error: SnapError,
    endpoint: str,
    service: Service,
    invalid_token_code: str | None = None,
    request: RawRequest | None = None,
) -> None:
    """Answer ``error`` with its SNAP code for ``service``; count and log it once (no secrets)."""
    status, document = error_body(error, service)
    if invalid_token_code is not None and error.case is Case.INVALID_TOKEN:
        document["responseCode"] = invalid_token_code
    metrics = runtime.metrics
    metrics.rejections.labels(endpoint, document["responseCode"]).inc()
    if isinstance(error, SignatureError):
        metrics.signature_failures.labels(endpoint, error.reason).inc()
    if _log.isEnabledFor(logging.INFO):  # the record and its fields only when it is written
        _log.info(
            "%s refused: %s %s",
            endpoint,
            document["responseCode"],
            document["responseMessage"],
            extra=refusal_fields(endpoint, document["responseCode"], error, request),
        )
    await answer(runtime, send, status, document)


def refusal_fields(
    endpoint: str, code: str, error: SnapError, request: RawRequest | None
) -> dict[str, Any]:
    """The ``extra=`` fields of a refusal's log line (see ``gateway.log.REQUEST_FIELDS``)."""
    reason = getattr(error, "reason", None) or error.field or error.detail or error.case.name
    fields: dict[str, Any] = {"endpoint": endpoint, "response_code": code, "reason": reason}
    if isinstance(error, ClockSkew):
        fields["clock_offset_s"] = round(error.offset, 1)
    if request is not None:
        fields["external_id"] = request.header(b"x-external-id")
        fields["partner"] = request.header(b"x-partner-id")
    return fields


async def admit(
    runtime: Runtime,
    request: RawRequest,
    send: Send,
    endpoint: str,
    path: str,
    service: Service,
    invalid_token_code: str | None = None,
) -> Verified | None:
    """:func:`verify_transaction`, answering its refusal (or an unexpected failure, as
    ``5xx01`` without details) here; ``None`` once answered."""
    try:
        return await verify_transaction(runtime, request, endpoint, path)
    except SnapError as error:
        await refuse(runtime, send, error, endpoint, service, invalid_token_code, request)
    except Exception:
        _log.exception("%s verification failed", endpoint)
        await answer(runtime, send, *error_body(SnapError(Case.INTERNAL_ERROR), service))
    return None


async def claim(
    runtime: Runtime,
    send: Send,
    verified: Verified,
    replay_ttl: float,
    cache_key: str | None,
    wait: float,
    endpoint: str,
    service: Service,
    lock_ttl: float = 0.0,
) -> Begin | None:
    """Claim the request's X-EXTERNAL-ID; ``None`` when it has been answered here already.

    The :class:`Begin` returned is ``NEW`` (go ahead) or ``RENDER`` (an identical retry of a
    cache hit whose outcome the backend kept: answer from ``begin.cached`` again). With
    ``lock_ttl``, a ``NEW`` claim whose answer is not cached also tried the resolve lock
    (``begin.locked``), all in one round trip.

    Seen before with the identical request: the first answer again, waiting up to ``wait``
    seconds while the first attempt still runs; if that attempt ended in a 5xx (which releases
    the id) the retry is processed afresh. Seen with a different request: ``409xx00``.
    """
    state = runtime.state
    for attempt in range(2):
        begin = await state.begin(
            verified.replay_key, verified.fingerprint, replay_ttl, cache_key, lock_ttl
        )
        if begin.claim is Claim.NEW:
            return begin
        if begin.claim is Claim.RENDER:  # identical retry of a cache hit: render it again
            runtime.metrics.replays.labels("identical_retry").inc()
            return begin
        if begin.claim is Claim.CONFLICT:
            runtime.metrics.replays.labels("conflict").inc()
            conflict = SnapError(Case.CONFLICT, detail="X-EXTERNAL-ID already used today")
            await refuse(runtime, send, conflict, endpoint, service)
            return None
        stored = begin.answer
        if begin.claim is Claim.PENDING and attempt == 0:
            stored = await state.wait(verified.replay_key, wait)
        if stored is not None:
            runtime.metrics.replays.labels("identical_retry").inc()
            await send_json(send, stored.status, stored.body, runtime.timestamp())
            return None
        if begin.claim is Claim.PENDING and attempt == 1:
            break
    # The first attempt is still running after the wait: DOKU may try again later.
    await refuse(runtime, send, SnapError(Case.TIMEOUT), endpoint, service)
    return None
