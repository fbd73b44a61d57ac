"""The merchant's client for DOKU's API: B2B token, check status, create/update/delete VA.

Spec §3.2, §5, §9, §10. Every call has a timeout. The B2B token is fetched once for any number
of concurrent callers and reused until shortly before it expires. Retries follow what is safe to
repeat: the token call and check status (read-only) are retried on connection failures, timeouts
and 5xx; create/update/delete only when the request provably never left (connection refused, TLS
or connect timeout), because a VA call that reached DOKU may have taken effect even if its answer
was lost. The symmetric signature covers exactly the bytes sent. Nothing here logs the secret,
keys, tokens or signatures.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ..config import ClientSettings, Credentials, Settings
from ..exceptions import DokuError, DokuProtocolError, DokuUnavailable
from ..log import get_logger
from ..snap.canonical import minify
from ..snap.signature import SymmetricSigner, sign_asymmetric
from ..snap.timestamps import format_timestamp
from ..snap.va import (
    CHECK_STATUS,
    CREATE_VA,
    DELETE_VA,
    KNOWN_CHANNELS,
    UPDATE_VA,
    CheckStatusRequest,
    CheckStatusResult,
    CreateVaRequest,
    DeleteVaRequest,
    Endpoint,
    UpdateVaRequest,
    VaResult,
)

__all__ = ["TOKEN_PATH", "DokuClient", "new_external_id"]

#: DOKU's B2B token endpoint (spec §9).
TOKEN_PATH = "/authorization/v1/access-token/b2b"

_log = get_logger("doku_client")
_Result = TypeVar("_Result")
# Connection never established: nothing reached DOKU, so even a create may be sent again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def new_external_id() -> str:
    """32 digits, unique per day: nanosecond clock plus 13 random digits.

    DOKU documents X-EXTERNAL-ID as a numeric string unique within the day (spec §4.1).
    """
    return f"{time.time_ns():019d}{secrets.randbelow(10**13):013d}"[-32:]


@dataclass(frozen=True, slots=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float = 0.0


class DokuClient:
    """Calls DOKU's SNAP API as the merchant.

    Give it an ``httpx.AsyncClient`` to share a connection pool (it is then not closed here), or
    let it own one; use it as an async context manager or call :meth:`aclose`. ``clock`` is a
    monotonic clock for token expiry; ``backoff``/``max_backoff`` shape the retry delays.
    """

    def __init__(
        self,
        credentials: Credentials,
        settings: ClientSettings | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff: float = 0.2,
        max_backoff: float = 2.0,
    ) -> None:
        self._credentials = credentials
        self._settings = settings or ClientSettings()
        self._base_url = self._settings.base_url.rstrip("/")
        # The signed EndpointUrl is the path DOKU sees, including any prefix in base_url.
        self._path_prefix = urlsplit(self._base_url).path
        self._timeout = httpx.Timeout(
            self._settings.timeout, connect=self._settings.connect_timeout
        )
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=self._timeout)
        self._signer = SymmetricSigner.from_secret(credentials.client_secret)
        self._clock = clock
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._random = random.SystemRandom()
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, http: httpx.AsyncClient | None = None
    ) -> DokuClient:
        """A client with the configured credentials and ``[client]`` settings."""
        return cls(settings.credentials, settings.client, http=http)

    async def __aenter__(self) -> DokuClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # -- operations ---------------------------------------------------------------------------

    async def check_status(self, request: CheckStatusRequest) -> CheckStatusResult:
        """Ask whether a VA was paid. Read-only, so retried on timeouts and 5xx."""
        answer = await self._transact(CHECK_STATUS, request.to_body(), idempotent=True)
        return _read(CheckStatusResult.from_body, answer)

    async def create_va(self, request: CreateVaRequest) -> VaResult:
        """Register a VA. Not retried once it may have reached DOKU."""
        _note_channel(request.channel)
        answer = await self._transact(CREATE_VA, request.to_body(), idempotent=False)
        return _read(VaResult.from_body, answer)

    async def update_va(self, request: UpdateVaRequest) -> VaResult:
        """Change a registered VA. Not retried once it may have reached DOKU."""
        _note_channel(request.channel)
        answer = await self._transact(UPDATE_VA, request.to_body(), idempotent=False)
        return _read(VaResult.from_body, answer)

    async def delete_va(self, request: DeleteVaRequest) -> VaResult:
        """Remove a registered VA (``DELETE`` with a JSON body). Not retried once sent."""
        _note_channel(request.channel)
        answer = await self._transact(DELETE_VA, request.to_body(), idempotent=False)
        return _read(VaResult.from_body, answer)

    # -- token --------------------------------------------------------------------------------

    async def access_token(self) -> str:
        """The current B2B token, fetched when missing or about to expire.

        Concurrent callers share one fetch: the lock is taken only when a refresh is due, and
        whoever waited on it finds the fresh token instead of fetching again.
        """
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        async with self._token_lock:
            token = self._token
            if token is None or self._clock() >= token.refresh_at:
                token = await self._fetch_token()
                self._token = token
            return token.value

    def invalidate_token(self, value: str | None = None) -> None:
        """Forget the cached token (only if it is still ``value``, when given)."""
        if value is None or (self._token is not None and self._token.value == value):
            self._token = None

    async def _fetch_token(self) -> _Token:
        started = self._clock()
        client_id = self._credentials.client_id
        content = minify({"grantType": "client_credentials"})

        def headers() -> dict[str, str]:
            timestamp = format_timestamp()
            signature = sign_asymmetric(
                self._credentials.merchant_private_key, client_id, timestamp
            )
            return {
                "Content-Type": "application/json",
                "X-TIMESTAMP": timestamp,
                "X-CLIENT-KEY": client_id,
                "X-SIGNATURE": signature,
            }

        response = await self._send("POST", TOKEN_PATH, content, headers, idempotent=True)
        answer = _check(response, _decode(response))
        value = answer.get("accessToken")
        lifetime = _expires_in(answer.get("expiresIn"))
        if not isinstance(value, str) or not value or lifetime is None:
            raise DokuProtocolError(
                "DOKU's token answer lacks accessToken or a positive expiresIn",
                status=response.status_code,
                response_code=answer.get("responseCode"),
            )
        # Refresh a little early so a token never expires between our check and DOKU's.
        margin = min(60.0, lifetime / 10)
        _log.info("obtained a DOKU B2B token valid for %ss", lifetime)
        return _Token(value, started + lifetime - margin)

    # -- plumbing -----------------------------------------------------------------------------

    async def _transact(
        self, endpoint: Endpoint, document: Mapping[str, Any], *, idempotent: bool
    ) -> dict[str, Any]:
        content = minify(document)
        signed_path = self._path_prefix + endpoint.path
        for renewed in (False, True):
            token = await self.access_token()

            def headers(token: str = token) -> dict[str, str]:
                # A fresh timestamp, signature and X-EXTERNAL-ID per attempt: each attempt that
                # may reach DOKU is a request of its own, and a stale timestamp may be refused.
                timestamp = format_timestamp()
                return {
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {token}",
                    "X-TIMESTAMP": timestamp,
                    "X-SIGNATURE": self._signer.sign(
                        endpoint.method, signed_path, token, content, timestamp
                    ),
                    "X-PARTNER-ID": self._credentials.client_id,
                    "X-EXTERNAL-ID": new_external_id(),
                    "CHANNEL-ID": self._settings.channel_id,
                }

            response = await self._send(
                endpoint.method, endpoint.path, content, headers, idempotent=idempotent
            )
            answer = _decode(response)
            if not renewed and _token_refused(answer):
                # DOKU refused the token before doing anything, so repeating is safe even for a
                # create; only the token this call used is dropped, not a newer one.
                _log.info("DOKU refused the B2B token on %s; fetching a new one", endpoint.path)
                self.invalidate_token(token)
                continue
            return _check(response, answer)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        path: str,
        content: bytes,
        headers: Callable[[], dict[str, str]],
        *,
        idempotent: bool,
    ) -> httpx.Response:
        url = self._base_url + path
        attempts = 1 + max(0, self._settings.retries)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self._http.request(
                    method, url, content=content, headers=headers(), timeout=self._timeout
                )
            except _NOT_SENT as exc:
                failure = f"{type(exc).__name__} (not sent)"
            except httpx.TransportError as exc:
                if not idempotent:
                    raise DokuUnavailable(
                        f"{method} {path}: {type(exc).__name__}; the request may have reached "
                        "DOKU, check its status before sending it again"
                    ) from None
                failure = type(exc).__name__
            else:
                _log.debug("%s %s -> HTTP %s", method, path, response.status_code)
                if response.status_code < 500 or not idempotent or last:
                    return response
                failure = f"HTTP {response.status_code}"
                await response.aclose()
            if last:
                raise DokuUnavailable(f"{method} {path}: {failure} after {attempts} attempt(s)")
            delay = self._delay(attempt)
            _log.warning(
                "DOKU %s %s failed: %s; retry %d of %d in %.2fs",
                method,
                path,
                failure,
                attempt + 1,
                attempts - 1,
                delay,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int) -> float:
        # Exponential backoff with full jitter, so many clients do not retry in step.
        ceiling = min(self._max_backoff, self._backoff * 2**attempt)
        return self._random.uniform(0, ceiling)


def _note_channel(channel: str) -> None:
    if channel not in KNOWN_CHANNELS:
        _log.warning("channel %r is not in DOKU's published list; sending it as given", channel)


def _expires_in(value: object) -> int | None:
    # BI documents expiresIn as a string, DOKU's Python SDK reads an integer: accept both.
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and value > 0:
        return value
    return None


def _decode(response: httpx.Response) -> dict[str, Any]:
    """The answer as a JSON object with a seven-digit ``responseCode``, or a typed error."""
    status = response.status_code
    try:
        document = json.loads(response.content)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict):
        code = document.get("responseCode")
        if isinstance(code, str) and len(code) == 7 and code.isdigit():
            return document
    # A proxy's HTML 502 page is an outage, not DOKU speaking a different protocol.
    error = DokuUnavailable if status >= 500 else DokuProtocolError
    what = "no JSON object" if not isinstance(document, dict) else "no valid responseCode"
    raise error(
        f"DOKU answered HTTP {status} with {what}",
        status=status,
        body=document if isinstance(document, dict) else None,
    )


def _token_refused(answer: Mapping[str, Any]) -> bool:
    code = str(answer["responseCode"])
    # 401xx01 Invalid Token (B2B), 401xx03 Token Not Found: a new token can fix these.
    return code.startswith("401") and code[5:] in ("01", "03")


def _check(response: httpx.Response, answer: dict[str, Any]) -> dict[str, Any]:
    status = response.status_code
    code = str(answer["responseCode"])
    if 200 <= status < 300 and code.startswith("2"):
        return answer
    message = answer.get("responseMessage")
    text = f"DOKU answered {code} {message if isinstance(message, str) else ''}".rstrip()
    error = DokuUnavailable if status >= 500 or code.startswith("5") else DokuError
    raise error(text, status=status, response_code=code, body=answer)


def _read(reader: Callable[[Mapping[str, Any]], _Result], answer: dict[str, Any]) -> _Result:
    try:
        return reader(answer)
    except ValueError as exc:
        raise DokuProtocolError(
            f"DOKU's answer has an unexpected shape: {exc}",
            response_code=str(answer.get("responseCode")),
            body=answer,
        ) from None
