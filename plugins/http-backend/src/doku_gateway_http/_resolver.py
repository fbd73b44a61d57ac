"""The ``http`` resolver: one GET to the merchant's billing service per lookup."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from gateway import BillStatus, Inquiry, Outcome, ResolverContext, ResolverUnavailable

from ._answer import parse_answer, status_of_gone

__all__ = ["HttpBackend"]

_OPTIONS = ("url", "timeout", "headers", "health_url")
_PLACEHOLDER = "{payment_code}"


class HttpBackend:
    """Asks ``GET url`` (with ``{payment_code}`` filled in) for the bill.

    ``200`` with a bill or ``{"status": "paid" | "expired"}``, ``404`` not found, ``410`` paid or
    expired (expired unless the body says ``"paid"``). Anything else, a timeout, a refused
    connection or a body that is not a valid answer raises :class:`~gateway.ResolverUnavailable`:
    DOKU is told to try again later and nothing is cached.

    ``options``: ``url`` (required), ``timeout`` (seconds for the whole call, default 2.0),
    ``headers`` (sent with every call), ``health_url`` (``GET`` for ``/readyz``; 2xx is healthy).
    The HTTP client is opened by ``startup`` and closed by ``shutdown``.
    """

    def __init__(self, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(_OPTIONS)})")
        url = options.get("url")
        if not isinstance(url, str) or _PLACEHOLDER not in url:
            raise ValueError(f"option 'url' is required and must contain {_PLACEHOLDER}")
        _check_url("url", url.replace(_PLACEHOLDER, "0"))
        timeout = options.get("timeout", 2.0)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ValueError("option 'timeout' must be a positive number of seconds")
        headers = options.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and (k + v).isascii()
            for k, v in headers.items()
        ):
            raise ValueError("option 'headers' must be a table of ASCII strings")
        health_url = options.get("health_url")
        if health_url is not None:
            if not isinstance(health_url, str):
                raise ValueError("option 'health_url' must be a string")
            _check_url("health_url", health_url)
        self.url = url
        self.timeout = float(timeout)
        self.health_url: str | None = health_url
        self._headers = {"Accept": "application/json", **headers}
        self._client: httpx.AsyncClient | None = None

    async def startup(self, context: ResolverContext) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
            )

    async def shutdown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def health(self) -> bool:
        """True once started; with ``health_url``, only while it answers 2xx."""
        client = self._client
        if client is None:
            return False
        if self.health_url is None:
            return True
        try:
            async with asyncio.timeout(self.timeout):
                response = await client.get(self.health_url)
        except (httpx.HTTPError, TimeoutError):
            return False
        return response.is_success

    async def resolve(self, inquiry: Inquiry) -> Outcome:
        client = self._client
        if client is None:
            raise ResolverUnavailable("http resolver is not started (startup() has not run)")
        # quote(safe=""): a payment code can never add a path segment or a query string.
        url = self.url.replace(_PLACEHOLDER, quote(inquiry.payment_code, safe=""))
        try:
            # httpx's timeout bounds each phase; this one bounds the whole call, so a backend
            # that trickles its answer byte by byte cannot hold the inquiry past the deadline.
            async with asyncio.timeout(self.timeout):
                response = await client.get(url)
        except (httpx.TimeoutException, TimeoutError):
            raise ResolverUnavailable(f"backend did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise ResolverUnavailable(f"backend unreachable: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status == 404:
            return BillStatus.NOT_FOUND
        if status == 410:
            return status_of_gone(_decode(response, strict=False))
        if status != 200:
            raise ResolverUnavailable(f"backend answered HTTP {status}")
        try:
            return parse_answer(_decode(response, strict=True))
        except ValueError as exc:
            raise ResolverUnavailable(f"backend answered an invalid bill: {exc}") from None


def _decode(response: httpx.Response, *, strict: bool) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):  # also JSONDecodeError and UnicodeDecodeError
        if strict:
            raise ValueError("the body is not valid JSON") from None
        return None


def _check_url(option: str, url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"option {option!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"option {option!r} must be an http:// or https:// URL")
