"""``POST /v1.1/transfer-va/inquiry``: DOKU asks for the bill behind a VA number (spec §7).

Order of checks, cheapest and least revealing first: headers and X-TIMESTAMP, the Bearer token
(verified once per token, then cached until it expires), the body, X-SIGNATURE, then the replay
guard — so an unauthenticated caller can neither learn anything nor burn X-EXTERNAL-IDs — then the
body's fields, the answer cache and finally the resolver.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..exceptions import ResolverError, ResolverUnavailable, SignatureError, SnapError
from ..log import get_logger
from ..responses import error_body, json_bytes, snap_response
from ..runtime import Runtime
from ..snap.codes import Case, Service
from ..snap.inquiry import parse_inquiry, render_bill
from ..snap.models import Bill, BillStatus, Inquiry, Outcome
from ..state import Claim, StoredAnswer
from .transaction import Verified, replay_ttl, verify_transaction

__all__ = ["InquiryHandler"]

_log = get_logger("inquiry")
_SERVICE = Service.INQUIRY

_STATUS_CASE = {
    BillStatus.NOT_FOUND: Case.BILL_NOT_FOUND,
    BillStatus.ALREADY_PAID: Case.BILL_PAID,
    BillStatus.EXPIRED: Case.BILL_EXPIRED,
}


class InquiryHandler:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.path = runtime.settings.paths.inquiry
        self.resolver_timeout = runtime.settings.inquiry.resolver_timeout
        self.open_amount = runtime.settings.inquiry.open_amount_value
        self.check_composition = runtime.settings.security.check_va_composition
        metrics = runtime.metrics
        self._latency = {
            r.name: metrics.inquiry_latency.labels(r.name) for r in runtime.resolvers.routes
        }
        self._cache_hit = metrics.cache.labels("hit")
        self._cache_miss = metrics.cache.labels("miss")

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        rt = self.runtime
        try:
            verified = await verify_transaction(rt, request, "inquiry", self.path)
        except SnapError as error:
            return self._refuse(error)
        except Exception:
            _log.exception("inquiry verification failed")
            return self._answer(*error_body(SnapError(Case.INTERNAL_ERROR), _SERVICE))
        inquiry: Inquiry | None = None
        field_error: SnapError | None = None
        try:
            inquiry = parse_inquiry(verified.document, check_composition=self.check_composition)
        except SnapError as error:
            field_error = error
        ttl = replay_ttl(rt)
        try:
            begin = await rt.state.begin(
                verified.replay_key,
                verified.fingerprint,
                ttl,
                inquiry.payment_code if inquiry is not None else None,
            )
        except Exception:
            _log.exception("state backend failed")
            return self._answer(*error_body(SnapError(Case.INTERNAL_ERROR), _SERVICE))
        if begin.claim is not Claim.NEW:
            return await self._replayed(begin.claim, begin.answer, verified)
        resolver = "none"
        if field_error is not None:
            status, document = error_body(field_error, _SERVICE)
            result = "bad_request"
        else:
            assert inquiry is not None
            status, document, resolver, result = await self._resolve(inquiry, begin.cached)
        body = json_bytes(document)
        if status >= 500:
            await rt.state.release(verified.replay_key)
        else:
            await rt.state.finish(
                verified.replay_key, verified.fingerprint, StoredAnswer(status, body), ttl
            )
        rt.metrics.inquiries.labels(resolver, result).inc()
        latency = self._latency.get(resolver)
        if latency is not None:
            latency.observe(time.perf_counter() - started)
        return snap_response(status, body, rt.timestamp())

    async def _resolve(
        self, inquiry: Inquiry, cached: Outcome | None
    ) -> tuple[int, dict[str, Any], str, str]:
        rt = self.runtime
        route = rt.resolvers.route(inquiry.partner_prefix)
        if route is None:
            status, document = error_body(SnapError(Case.BILL_NOT_FOUND), _SERVICE)
            return status, document, "none", "no_resolver"
        outcome = cached
        if outcome is not None:
            self._cache_hit.inc()
        else:
            self._cache_miss.inc()
            started = time.perf_counter()
            try:
                outcome = await rt.fetcher.fetch(route, inquiry)
            except ResolverUnavailable as exc:
                _log.warning("resolver %s unavailable: %s", route.name, exc)
                status, document = error_body(SnapError(Case.TIMEOUT), _SERVICE)
                return status, document, route.name, "unavailable"
            except ResolverError as exc:
                _log.error("resolver %s: %s", route.name, exc)
                status, document = error_body(SnapError(Case.INTERNAL_ERROR), _SERVICE)
                return status, document, route.name, "error"
            except Exception:
                _log.exception("resolver %s raised", route.name)
                status, document = error_body(SnapError(Case.INTERNAL_ERROR), _SERVICE)
                return status, document, route.name, "error"
            finally:
                rt.metrics.resolver_latency.labels(route.name).observe(
                    time.perf_counter() - started
                )
        if isinstance(outcome, Bill):
            if outcome.expires_at is not None and outcome.expires_at.timestamp() <= rt.clock():
                outcome = BillStatus.EXPIRED
            else:
                document = render_bill(inquiry, outcome, open_amount_value=self.open_amount)
                return 200, document, route.name, "bill"
        status, document = error_body(SnapError(_STATUS_CASE[outcome]), _SERVICE)
        return status, document, route.name, outcome.value

    async def _replayed(
        self, claim: Claim, answer: StoredAnswer | None, verified: Verified
    ) -> Response:
        rt = self.runtime
        if claim is Claim.PENDING:
            answer = await rt.state.wait(verified.replay_key, self.resolver_timeout + 1.0)
            claim = Claim.REPLAY if answer is not None else Claim.CONFLICT
        if claim is Claim.REPLAY and answer is not None:
            rt.metrics.replays.labels("identical_retry").inc()
            return snap_response(answer.status, answer.body, rt.timestamp())
        rt.metrics.replays.labels("conflict").inc()
        return self._refuse(SnapError(Case.CONFLICT, detail="X-EXTERNAL-ID already used today"))

    def _refuse(self, error: SnapError) -> Response:
        status, document = error_body(error, _SERVICE)
        rt = self.runtime
        rt.metrics.rejections.labels("inquiry", document["responseCode"]).inc()
        if isinstance(error, SignatureError):
            rt.metrics.signature_failures.labels("inquiry", error.reason).inc()
        _log.info("inquiry refused: %s %s", document["responseCode"], document["responseMessage"])
        return self._answer(status, document)

    def _answer(self, status: int, document: dict[str, Any]) -> Response:
        return snap_response(status, json_bytes(document), self.runtime.timestamp())
