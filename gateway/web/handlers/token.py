"""``POST /v1.0/access-token/b2b``: DOKU asks the merchant for an access token (spec §6)."""

from __future__ import annotations

from typing import Any

from ...log import get_logger
from ...snap.answers import error_body, json_bytes
from ...snap.codes import Case, Service
from ...snap.errors import SignatureError, SnapError
from ...snap.fields import parse_json
from ...snap.timestamps import parse_timestamp, within_window
from ..asgi import RawRequest, Send, send_json
from ..runtime import Runtime

__all__ = ["TokenHandler"]

_log = get_logger("token")
_SERVICE = Service.ACCESS_TOKEN


class TokenHandler:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.client_id = runtime.settings.credentials.client_id

    async def handle(self, request: RawRequest, send: Send) -> None:
        rt = self.runtime
        try:
            body = self._issue(await self._verify(request))
        except SnapError as error:
            status, document = error_body(error, _SERVICE)
            rt.metrics.rejections.labels("token", document["responseCode"]).inc()
            if isinstance(error, SignatureError):
                rt.metrics.signature_failures.labels("token", error.reason).inc()
            _log.info("token request refused: %s", document["responseMessage"])
            await send_json(send, status, json_bytes(document), rt.timestamp())
            return
        except Exception:
            _log.exception("token request failed")
            status, document = error_body(SnapError(Case.INTERNAL_ERROR), _SERVICE)
            await send_json(send, status, json_bytes(document), rt.timestamp())
            return
        rt.metrics.tokens_issued.inc()
        await send_json(
            send,
            200,
            json_bytes(body),
            rt.timestamp(),
            {b"x-client-key": self.client_id.encode("latin-1")},
        )

    async def _verify(self, request: RawRequest) -> dict[str, Any]:
        rt = self.runtime
        http = rt.settings.http
        raw = await request.body(http.max_body_bytes, http.body_timeout)
        timestamp = request.require(b"x-timestamp", "X-TIMESTAMP")
        client_key = request.require(b"x-client-key", "X-CLIENT-KEY")
        signature = request.require(b"x-signature", "X-SIGNATURE")
        try:
            moment = parse_timestamp(timestamp)
        except ValueError:
            raise SnapError(Case.INVALID_FIELD_FORMAT, "X-TIMESTAMP") from None
        if not within_window(moment, rt.clock(), rt.settings.security.timestamp_skew):
            raise SnapError(Case.INVALID_FIELD_FORMAT, "X-TIMESTAMP")
        if client_key != self.client_id:
            raise SignatureError(Case.UNAUTHORIZED, "unknown X-CLIENT-KEY")
        # DOKU signs the merchant's own client id (spec §5.1), so verify over ours; with either
        # of DOKU's keys during a rotation (runtime.doku_keys).
        if not rt.verify_token_request(self.client_id, timestamp, signature):
            raise SignatureError(Case.UNAUTHORIZED, "Invalid Signature")
        document = parse_json(raw, http.max_json_depth)
        grant = document.get("grantType")
        if grant is None or grant == "":
            raise SnapError(Case.MISSING_MANDATORY_FIELD, "grantType")
        if grant != "client_credentials":
            raise SnapError(Case.INVALID_FIELD_FORMAT, "grantType")
        return document

    def _issue(self, _request: dict[str, Any]) -> dict[str, Any]:
        rt = self.runtime
        token = rt.issuer.issue(rt.clock())
        expires_in: int | str = token.expires_in
        if rt.settings.security.expires_in_type == "string":
            expires_in = str(expires_in)
        return {
            "responseCode": "2007300",
            "responseMessage": "Successful",
            "accessToken": token.access_token,
            "tokenType": "Bearer",
            "expiresIn": expires_in,
            "additionalInfo": {},
        }
