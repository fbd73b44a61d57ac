"""``POST /v1.1/transfer-va/inquiry``: DOKU asks for the bill behind a VA number (spec §7).

After the checks of :mod:`.transaction` and the replay guard: the body's fields, the answer cache,
and finally the resolver (through the single flight). This is the hot path; it works on the raw
ASGI request and renders cached bills from pre-formatted templates.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ...exceptions import ResolverError, ResolverUnavailable
from ...log import get_logger, mask_va
from ...metrics import Count
from ...payments.ledger.base import InquiryLedger, LedgerEntry
from ...snap.answers import error_body, json_bytes
from ...snap.codes import Case, Service
from ...snap.errors import SnapError
from ...snap.inquiry import bill_template, parse_inquiry, render_bill
from ...snap.models import Bill, BillStatus, Inquiry, Outcome
from ...state.base import StoredAnswer
from ..asgi import RawRequest, Send, send_json
from ..runtime import Runtime
from .admission import admit, answer, claim, replay_ttl

__all__ = ["InquiryHandler"]

_log = get_logger("inquiry")
_SERVICE = Service.INQUIRY

_STATUS_CASE = {
    BillStatus.NOT_FOUND: Case.BILL_NOT_FOUND,
    BillStatus.ALREADY_PAID: Case.BILL_PAID,
    BillStatus.EXPIRED: Case.BILL_EXPIRED,
}


class InquiryHandler:
    def __init__(self, runtime: Runtime, ledger: InquiryLedger) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.path = runtime.settings.paths.inquiry
        self.resolver_timeout = runtime.settings.inquiry.resolver_timeout
        # The resolve lock, taken with the replay claim, outlives the slowest route's timeout.
        self.lock_ttl = (
            max((r.timeout for r in runtime.resolvers.routes), default=self.resolver_timeout) + 1.0
        )
        self.open_amount = runtime.settings.inquiry.open_amount_value
        self.check_composition = runtime.settings.security.check_va_composition
        metrics = runtime.metrics
        self._latency = {
            r.name: metrics.inquiry_latency.labels(r.name) for r in runtime.resolvers.routes
        }
        self._results: dict[tuple[str, str], Count] = {}
        self._cache_hit = metrics.cache.labels("hit")
        self._cache_miss = metrics.cache.labels("miss")

    async def handle(self, request: RawRequest, send: Send) -> None:
        started = time.perf_counter()
        rt = self.runtime
        verified = await admit(rt, request, send, "inquiry", self.path, _SERVICE)
        if verified is None:
            return
        inquiry: Inquiry | None = None
        field_error: SnapError | None = None
        try:
            inquiry = parse_inquiry(verified.document, check_composition=self.check_composition)
        except SnapError as error:
            field_error = error
        ttl = replay_ttl(rt)
        try:
            begin = await claim(
                rt,
                send,
                verified,
                ttl,
                inquiry.payment_code if inquiry is not None else None,
                self.resolver_timeout + 1.0,
                "inquiry",
                _SERVICE,
                lock_ttl=self.lock_ttl,
            )
        except Exception:
            _log.exception("state backend failed")
            await answer(rt, send, *error_body(SnapError(Case.INTERNAL_ERROR), _SERVICE))
            return
        if begin is None:
            return
        resolver = "none"
        if field_error is not None:
            # (A refused body carries no payment code, so it took no resolve lock.)
            status, body = _error(field_error)
            result = "bad_request"
        else:
            assert inquiry is not None
            try:
                status, body, resolver, result = await self._resolve(
                    inquiry, begin.cached, begin.locked
                )
            except Exception:
                # Whatever went wrong, DOKU gets a SNAP answer and the id is released below.
                _log.exception("inquiry failed")
                status, body = _error(SnapError(Case.INTERNAL_ERROR))
                result = "error"
        if status >= 500:
            await rt.state.release(verified.replay_key)
        elif not begin.stored:
            await rt.state.finish(
                verified.replay_key, verified.fingerprint, StoredAnswer(status, body), ttl
            )
        await send_json(send, status, body, rt.timestamp())
        self._count(resolver, result, started)
        if field_error is not None or _log.isEnabledFor(logging.DEBUG):
            _log_request(request, verified.document, status, body, field_error, started)

    def _count(self, resolver: str, result: str, started: float) -> None:
        counter = self._results.get((resolver, result))
        if counter is None:
            counter = self.runtime.metrics.inquiries.labels(resolver, result)
            self._results[(resolver, result)] = counter
        counter.inc()
        latency = self._latency.get(resolver)
        if latency is not None:
            latency.observe(time.perf_counter() - started)

    async def _resolve(
        self, inquiry: Inquiry, cached: Outcome | None, locked: bool = False
    ) -> tuple[int, bytes, str, str]:
        rt = self.runtime
        route = rt.resolvers.route(inquiry.partner_prefix)
        if route is None:
            if locked:
                await rt.state.unlock(inquiry.payment_code)
            return (*_error(SnapError(Case.BILL_NOT_FOUND)), "none", "no_resolver")
        outcome = cached
        if outcome is not None:
            self._cache_hit.inc()
        else:
            self._cache_miss.inc()
            started = time.perf_counter()
            try:
                outcome = await rt.fetcher.fetch(route, inquiry, locked=locked)
            except ResolverUnavailable as exc:
                _log.warning("resolver %s unavailable: %s", route.name, exc)
                return (*_error(SnapError(Case.TIMEOUT)), route.name, "unavailable")
            except ResolverError as exc:
                _log.error("resolver %s: %s", route.name, exc)
                return (*_error(SnapError(Case.INTERNAL_ERROR)), route.name, "error")
            except Exception:
                _log.exception("resolver %s raised", route.name)
                return (*_error(SnapError(Case.INTERNAL_ERROR)), route.name, "error")
            finally:
                rt.metrics.resolver_latency.labels(route.name).observe(
                    time.perf_counter() - started
                )
        if isinstance(outcome, Bill):
            if outcome.expires_at is not None and outcome.expires_at.timestamp() <= rt.clock():
                outcome = BillStatus.EXPIRED
            else:
                if cached is not None:
                    # A cached bill is answered again and again: from its pre-rendered template.
                    body = bill_template(outcome, self.open_amount).render(inquiry)
                else:
                    # A bill seen for the first time (most VAs are inquired once): one encode,
                    # no template to build and cache. The same bytes either way.
                    body = json_bytes(
                        render_bill(inquiry, outcome, open_amount_value=self.open_amount)
                    )
                    # Remember what was offered, for `reconcile` if the notification never comes;
                    # cache hits repeat an entry already made.
                    self.ledger.note(LedgerEntry.from_inquiry(inquiry, outcome, rt.clock()))
                return 200, body, route.name, "bill"
        return (*_error(SnapError(_STATUS_CASE[outcome])), route.name, outcome.value)


def _error(error: SnapError) -> tuple[int, bytes]:
    status, document = error_body(error, _SERVICE)
    return status, json_bytes(document)


def _log_request(
    request: RawRequest,
    document: dict[str, Any],
    status: int,
    body: bytes,
    refusal: SnapError | None,
    started: float,
) -> None:
    """One line for a refused body (INFO) or, at DEBUG, for every inquiry; built only then."""
    code = str(json.loads(body).get("responseCode", status))
    va = document.get("virtualAccountNo")
    extra: dict[str, Any] = {
        "endpoint": "inquiry",
        "external_id": request.header(b"x-external-id"),
        "partner": request.header(b"x-partner-id"),
        "response_code": code,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "va": mask_va(va) if isinstance(va, str) else None,
    }
    if refusal is not None:
        extra["reason"] = refusal.field or refusal.detail or refusal.case.name
        _log.info("inquiry refused: %s %s", code, refusal.field or "", extra=extra)
    else:
        _log.debug("inquiry answered: %s", code, extra=extra)
