"""``FakeDoku``: DOKU's API (token, check status, VA management) in memory, for tests.

It checks what DOKU checks, with the gateway's own protocol code: the token call's RSA signature
with the merchant public key, the Bearer token and the symmetric X-SIGNATURE of transactions with
the client secret, and request bodies with the rules of :mod:`gateway.snap.va`. Errors carry the
SNAP code of the service called (``4002701 Invalid Field Format {trxId}``). Switches make it
stall, fail or answer garbage, and it counts requests per path so tests can assert retries.

Run it with uvicorn (``tests/support.running_server(fake.app)``); it keeps its state on the
instance, which the serving thread and the test share (guarded by a lock).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..doku.client import TOKEN_PATH
from ..snap.amounts import format_amount
from ..snap.answers import error_body, json_bytes
from ..snap.codes import Case, Service
from ..snap.errors import SnapError
from ..snap.fields import parse_json
from ..snap.signature import SymmetricSigner, verify_asymmetric
from ..snap.timestamps import format_timestamp, parse_timestamp, within_window
from ..snap.va import (
    CHECK_STATUS,
    CREATE_VA,
    DELETE_VA,
    UPDATE_VA,
    CheckStatusRequest,
    CreateVaRequest,
    DeleteVaRequest,
    Endpoint,
    UpdateVaRequest,
)
from ._responses import snap_response

__all__ = ["FakeDoku", "Payment", "Received", "create_fake_doku"]

_TRANSACTION_HEADERS = ("X-TIMESTAMP", "X-SIGNATURE", "X-PARTNER-ID", "X-EXTERNAL-ID", "CHANNEL-ID")
_UPDATABLE = (
    "name",
    "email",
    "phone",
    "amount",
    "trx_type",
    "expires_at",
    "min_amount",
    "max_amount",
)
_HOW_TO_PAY = "https://fake-doku.invalid/how-to-pay"
_Handler = Callable[[Endpoint, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment DOKU knows of, as check status reports it."""

    amount: Decimal
    payment_request_id: str
    inquiry_request_id: str | None = None
    trx_id: str | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived: tests assert on headers and the exact bytes."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeDoku:
    """A DOKU stand-in; serve :attr:`app`. See the module docstring."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        merchant_public_key: rsa.RSAPublicKey,
        *,
        token_lifetime: int = 900,
        expires_in_as_string: bool = False,
        timestamp_skew: float = 300.0,
    ) -> None:
        self.client_id = client_id
        self.merchant_public_key = merchant_public_key
        self.token_lifetime = token_lifetime
        self.expires_in_as_string = expires_in_as_string
        self.timestamp_skew = timestamp_skew
        #: Seconds every request waits before it is answered (0: none). Set back to 0 to release
        #: requests already waiting.
        self.stall_seconds = 0.0
        #: Requests per path, counted on arrival (before any switch applies).
        self.requests: Counter[str] = Counter()
        self.received: list[Received] = []
        #: Tokens handed out (token calls that passed every check).
        self.tokens_issued = 0
        self._signer = SymmetricSigner.from_secret(client_secret)
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._external_ids: set[str] = set()
        self._failures: list[tuple[int, str | None, str | None]] = []
        self._malformed: list[str | None] = []
        self._vas: dict[str, CreateVaRequest] = {}
        self._payments: dict[str, Payment] = {}
        routes = [Route(TOKEN_PATH, self._token_call, methods=["POST"])]
        handlers: dict[Endpoint, _Handler] = {
            CHECK_STATUS: self._check_status,
            CREATE_VA: self._create,
            UPDATE_VA: self._update,
            DELETE_VA: self._delete,
        }
        for endpoint, handler in handlers.items():
            routes.append(
                Route(
                    endpoint.path, self._transaction(endpoint, handler), methods=[endpoint.method]
                )
            )
        self.app = Starlette(routes=routes)

    # -- switches and state, for tests ---------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 500,
        *,
        path: str | None = None,
        response_code: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests (to ``path``, or any) with HTTP ``status``.

        The body carries ``response_code``, by default ``{status}{service}00``.
        """
        with self._lock:
            self._failures.extend([(status, path, response_code)] * n)

    def malformed_next(self, n: int, *, path: str | None = None) -> None:
        """Answer the next ``n`` requests (to ``path``, or any) with HTTP 200 and broken JSON."""
        with self._lock:
            self._malformed.extend([path] * n)

    def revoke_tokens(self) -> None:
        """Forget every issued token, as DOKU does when one expires or is revoked early."""
        with self._lock:
            self._tokens.clear()

    def mark_paid(
        self,
        virtual_account_no: str,
        amount: Decimal,
        payment_request_id: str,
        *,
        inquiry_request_id: str | None = None,
        trx_id: str | None = None,
    ) -> None:
        """Record a payment, so check status reports the VA paid (spaces in the number ignored)."""
        key = virtual_account_no.replace(" ", "")
        with self._lock:
            va = self._vas.get(key)
            trx = trx_id if trx_id is not None else (va.trx_id if va else None)
            self._payments[key] = Payment(amount, payment_request_id, inquiry_request_id, trx)

    def virtual_account(self, virtual_account_no: str) -> CreateVaRequest | None:
        """The VA as created and updated, or ``None`` (never created, or deleted)."""
        with self._lock:
            return self._vas.get(virtual_account_no.replace(" ", ""))

    # -- request handling ----------------------------------------------------------------------

    async def _arrive(self, request: Request) -> tuple[bytes, Response | None]:
        """Count, record and apply the switches; a response here short-cuts the request."""
        raw = await request.body()
        path = request.url.path
        with self._lock:
            self.requests[path] += 1
            self.received.append(Received(request.method, path, dict(request.headers), raw))
        waited = 0.0
        # Sleep in slices so a test can release stalled requests by resetting stall_seconds.
        while waited < self.stall_seconds:
            await asyncio.sleep(0.02)
            waited += 0.02
        with self._lock:
            failure = _take(self._failures, lambda item: item[1] in (None, path))
            broken = _take(self._malformed, lambda item: item in (None, path))
        if failure is not None:
            status, _, code = failure[0]
            code = code or f"{status}{_service(path):02d}00"
            body = {"responseCode": code, "responseMessage": "Failure requested by the test"}
            return raw, snap_response(status, json_bytes(body), format_timestamp())
        if broken is not None:
            return raw, Response(b'{"responseCode": "200', media_type="application/json")
        return raw, None

    async def _token_call(self, request: Request) -> Response:
        raw, early = await self._arrive(request)
        if early is not None:
            return early
        try:
            self._verify_token_call(request, raw)
        except SnapError as error:
            status, document = error_body(error, Service.ACCESS_TOKEN)
            return snap_response(status, json_bytes(document), format_timestamp())
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.time() + self.token_lifetime
            self.tokens_issued += 1
        lifetime = self.token_lifetime
        # DOKU's Python SDK reads an integer, BI documents a string: clients must take both.
        answer: dict[str, Any] = {
            "responseCode": "2007300",
            "responseMessage": "Successful",
            "accessToken": token,
            "tokenType": "Bearer",
            "expiresIn": str(lifetime) if self.expires_in_as_string else lifetime,
            "additionalInfo": {},
        }
        return snap_response(200, json_bytes(answer), format_timestamp())

    def _verify_token_call(self, request: Request, raw: bytes) -> None:
        timestamp = _header(request, "X-TIMESTAMP")
        client_key = _header(request, "X-CLIENT-KEY")
        signature = _header(request, "X-SIGNATURE")
        self._check_timestamp(timestamp)
        if client_key != self.client_id:
            raise SnapError(Case.UNAUTHORIZED, detail="Unknown Client")
        if not verify_asymmetric(self.merchant_public_key, self.client_id, timestamp, signature):
            raise SnapError(Case.UNAUTHORIZED, detail="Invalid Signature")
        document = parse_json(raw)
        if document.get("grantType") != "client_credentials":
            raise SnapError(Case.INVALID_FIELD_FORMAT, "grantType")

    def _transaction(
        self, endpoint: Endpoint, handler: _Handler
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            raw, early = await self._arrive(request)
            if early is not None:
                return early
            try:
                self._verify_transaction(request, endpoint, raw)
                answer = await handler(endpoint, parse_json(raw))
            except SnapError as error:
                status, document = error_body(error, endpoint.service)
                return snap_response(status, json_bytes(document), format_timestamp())
            return snap_response(200, json_bytes(answer), format_timestamp())

        return handle

    def _verify_transaction(self, request: Request, endpoint: Endpoint, raw: bytes) -> None:
        timestamp, signature, partner, external_id, _ = (
            _header(request, name) for name in _TRANSACTION_HEADERS
        )
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            expires = self._tokens.get(token.strip())
        if scheme.lower() != "bearer" or expires is None or expires < time.time():
            raise SnapError(Case.INVALID_TOKEN)
        if partner != self.client_id:
            raise SnapError(Case.UNAUTHORIZED, detail="Unknown X-PARTNER-ID")
        self._check_timestamp(timestamp)
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            document = None
        if not self._signer.verify(
            endpoint.method, endpoint.path, token.strip(), raw, document, timestamp, signature
        ):
            raise SnapError(Case.UNAUTHORIZED, detail="Signature Not Match")
        with self._lock:
            if external_id in self._external_ids:
                raise SnapError(Case.CONFLICT)
            self._external_ids.add(external_id)

    def _check_timestamp(self, timestamp: str) -> None:
        try:
            moment = parse_timestamp(timestamp)
        except ValueError:
            raise SnapError(Case.INVALID_FIELD_FORMAT, "X-TIMESTAMP") from None
        if not within_window(moment, time.time(), self.timestamp_skew):
            raise SnapError(Case.INVALID_FIELD_FORMAT, "X-TIMESTAMP")

    # -- the operations -----------------------------------------------------------------------

    async def _check_status(self, endpoint: Endpoint, document: dict[str, Any]) -> dict[str, Any]:
        request = CheckStatusRequest.from_body(document)
        key = request.virtual_account_no.replace(" ", "")
        with self._lock:
            va, payment = self._vas.get(key), self._payments.get(key)
        if va is None and payment is None:
            raise SnapError(Case.TRANSACTION_NOT_FOUND)
        data: dict[str, Any] = {
            "paymentFlagReason": (
                {"english": "Success", "indonesia": "Sukses"}
                if payment
                else {"english": "Pending", "indonesia": "Belum Terbayar"}
            ),
            "partnerServiceId": request.partner_service_id,
            "customerNo": request.customer_no,
            "virtualAccountNo": request.virtual_account_no,
        }
        if payment is not None:
            if payment.inquiry_request_id is not None:
                data["inquiryRequestId"] = payment.inquiry_request_id
            data["paymentRequestId"] = payment.payment_request_id
        trx_id = payment.trx_id if payment is not None else (va.trx_id if va else None)
        if trx_id is not None:
            data["trxId"] = trx_id
        paid = payment.amount if payment is not None else Decimal(0)
        data["paidAmount"] = {"value": format_amount(paid), "currency": "IDR"}
        if va is not None:
            data["billDetails"] = [
                {"billAmount": {"value": format_amount(va.amount), "currency": "IDR"}}
            ]
        return _success(
            endpoint, {"virtualAccountData": data, "additionalInfo": {"acquirer": "FAKE"}}
        )

    async def _create(self, endpoint: Endpoint, document: dict[str, Any]) -> dict[str, Any]:
        request = CreateVaRequest.from_body(document)
        key = request.virtual_account_no.replace(" ", "")
        with self._lock:
            if key in self._vas:
                raise SnapError(Case.CONFLICT)
            self._vas[key] = request
        return _success(endpoint, {"virtualAccountData": _va_data(request)})

    async def _update(self, endpoint: Endpoint, document: dict[str, Any]) -> dict[str, Any]:
        request = UpdateVaRequest.from_body(document)
        key = request.virtual_account_no.replace(" ", "")
        with self._lock:
            current = self._existing(key, request.trx_id)
            changes = {
                name: getattr(request, name)
                for name in _UPDATABLE
                if getattr(request, name) is not None
            }
            # Re-validated as a whole: an update must leave a VA that could have been created.
            updated = dataclasses.replace(current, channel=request.channel, **changes)
            self._vas[key] = updated
        return _success(endpoint, {"virtualAccountData": _va_data(updated)})

    def _existing(self, key: str, trx_id: str) -> CreateVaRequest:
        """The VA an update or delete names (caller holds the lock); DOKU's codes if not."""
        current = self._vas.get(key)
        if current is None:
            raise SnapError(Case.VIRTUAL_ACCOUNT_NOT_FOUND)
        if current.trx_id != trx_id:
            raise SnapError(Case.INCONSISTENT_REQUEST)
        return current

    async def _delete(self, endpoint: Endpoint, document: dict[str, Any]) -> dict[str, Any]:
        request = DeleteVaRequest.from_body(document)
        key = request.virtual_account_no.replace(" ", "")
        with self._lock:
            self._existing(key, request.trx_id)
            del self._vas[key]
        return _success(endpoint, {"virtualAccountData": request.to_body()})


def create_fake_doku(
    client_id: str,
    client_secret: str,
    merchant_public_key: rsa.RSAPublicKey,
    *,
    token_lifetime: int = 900,
    expires_in_as_string: bool = False,
) -> FakeDoku:
    """A :class:`FakeDoku` for these credentials; serve its ``.app``."""
    return FakeDoku(
        client_id,
        client_secret,
        merchant_public_key,
        token_lifetime=token_lifetime,
        expires_in_as_string=expires_in_as_string,
    )


def _take(queue: list[Any], matches: Callable[[Any], bool]) -> tuple[Any] | None:
    """Remove the first matching item; wrapped, because an item may itself be ``None``."""
    for index, item in enumerate(queue):
        if matches(item):
            return (queue.pop(index),)
    return None


def _service(path: str) -> int:
    for endpoint in (CHECK_STATUS, CREATE_VA, UPDATE_VA, DELETE_VA):
        if endpoint.path == path:
            return int(endpoint.service)
    return int(Service.ACCESS_TOKEN)


def _header(request: Request, name: str) -> str:
    value = request.headers.get(name)
    if value is None or not value.strip():
        raise SnapError(Case.MISSING_MANDATORY_FIELD, name)
    return value


def _success(endpoint: Endpoint, data: dict[str, Any]) -> dict[str, Any]:
    code = f"200{int(endpoint.service):02d}00"
    return {"responseCode": code, "responseMessage": "Successful", **data}


def _va_data(va: CreateVaRequest) -> dict[str, Any]:
    data = va.to_body()
    data.pop("freeText", None)
    info = dict(data["additionalInfo"])
    digits = va.virtual_account_no.replace(" ", "")
    info["howToPayPage"] = f"{_HOW_TO_PAY}/{digits}"
    info["howToPayApi"] = f"{_HOW_TO_PAY}-api/{digits}"
    data["additionalInfo"] = info
    return data
