"""``POST /v1.0/transfer-va/payment``: DOKU reports a payment (spec §8).

Record first, acknowledge fast, deliver reliably: the notification is appended to the durable
journal before ``2002500`` goes back, because DOKU retries a failed notification only after 30
minutes. If the journal cannot be written, DOKU gets a 5xx and nothing is acknowledged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...log import get_logger
from ...payments.delivery import Deliverer
from ...payments.journal.base import Journal, JournalEntry
from ...payments.ledger.base import InquiryLedger
from ...snap.answers import error_body, json_bytes
from ...snap.codes import Case, Service
from ...snap.errors import SnapError
from ...snap.models import Payment
from ...snap.payment import parse_payment, render_ack
from ...state.base import StoredAnswer
from ..asgi import RawRequest, Send, send_json
from ..runtime import Runtime
from .admission import admit, answer, claim, replay_ttl

__all__ = ["PaymentHandler"]

_log = get_logger("payment")
_SERVICE = Service.PAYMENT


class PaymentHandler:
    def __init__(
        self, runtime: Runtime, journal: Journal, deliverer: Deliverer, ledger: InquiryLedger
    ) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.journal = journal
        self.deliverer = deliverer
        self.path = runtime.settings.paths.payment
        self.sync = runtime.settings.payment.delivery == "sync"
        self.token_code = runtime.settings.payment.invalid_token_code
        self.check_composition = runtime.settings.security.check_va_composition

    async def handle(self, request: RawRequest, send: Send) -> None:
        rt = self.runtime
        # DOKU's SDK answers 4012701 for a bad token here, BI says 4012501 (spec §8.3).
        verified = await admit(rt, request, send, "payment", self.path, _SERVICE, self.token_code)
        if verified is None:
            return
        ttl = replay_ttl(rt)
        wait = rt.settings.payment.hook_timeout + 5.0
        try:
            begin = await claim(rt, send, verified, ttl, None, wait, "payment", _SERVICE)
        except Exception:
            _log.exception("state backend failed")
            await answer(rt, send, *error_body(SnapError(Case.INTERNAL_ERROR), _SERVICE))
            return
        if begin is None:
            return
        try:
            status, document = await self._record(verified.document, verified.raw)
        except Exception:
            # Nothing acknowledged, and the id released below so DOKU's retry is processed.
            _log.exception("payment notification failed")
            status, document = error_body(SnapError(Case.INTERNAL_ERROR), _SERVICE)
        body = await _encode(document)
        if status >= 500:
            await rt.state.release(verified.replay_key)
        else:
            await rt.state.finish(
                verified.replay_key, verified.fingerprint, StoredAnswer(status, body), ttl
            )
        await send_json(send, status, body, rt.timestamp())

    async def _record(self, document: dict[str, Any], raw: bytes) -> tuple[int, dict[str, Any]]:
        rt = self.runtime
        try:
            payment = parse_payment(document, check_composition=self.check_composition)
        except SnapError as error:
            rt.metrics.payments.labels("rejected").inc()
            return error_body(error, _SERVICE)
        entry = JournalEntry(
            payment.payment_request_id,
            payment.payment_code,
            payment.partner_service_id.strip(),
            document,
            rt.clock(),
            raw=raw,  # journaled as received: nothing the parser accepted is re-encoded
        )
        try:
            stored, new = await self.journal.append(entry)
        except Exception:
            _log.exception(
                "payment %s could not be journaled; not acknowledged", payment.payment_request_id
            )
            rt.metrics.payments.labels("journal_error").inc()
            return error_body(SnapError(Case.INTERNAL_ERROR), _SERVICE)
        rt.metrics.payments.labels("new" if new else "duplicate").inc()
        if new:
            self.deliverer.accepted(payment)
            await self._invalidate(payment)
            # The VA was paid: `reconcile` need not ask DOKU about it (a hint: not awaited).
            self.ledger.forget(payment.payment_code)
        if (
            self.sync
            and not await self.journal.is_delivered(stored.payment_request_id)
            and not await self.deliverer.deliver_now(stored)
        ):
            # Journaled, so the background delivery keeps trying; DOKU will also retry.
            return error_body(SnapError(Case.GENERAL_ERROR, detail="payment hook failed"), _SERVICE)
        return 200, render_ack(stored.body)

    async def _invalidate(self, payment: Payment) -> None:
        """A paid bill's cached answer must not be served again, unless the VA is reusable.

        Until the merchant's hook has recorded the payment, its resolver still calls a closed
        bill payable; so a closed bill is answered "already paid" from the cache meanwhile (the
        delivery drops that entry once the hook returned, and the resolver decides again).
        """
        try:
            await self.runtime.state.mark_paid(
                payment.payment_code,
                payment.trx_type in (None, "C"),
                self.runtime.settings.cache.final_ttl,
            )
        except Exception:
            _log.warning("could not invalidate the cached answer after a payment", exc_info=True)


async def _encode(document: dict[str, Any]) -> bytes:
    """The answer's bytes. The ack echoes ``additionalInfo``, one level deeper than the request
    held it: nesting the parser just accepted is encoded on a fresh stack if need be."""
    try:
        return json_bytes(document)
    except RecursionError:
        return await asyncio.to_thread(json_bytes, document)
