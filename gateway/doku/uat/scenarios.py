"""The scenarios DOKU's UAT runs, one method each, in order (the payment last)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

from ...snap.amounts import is_amount
from ...snap.signature import sign_asymmetric
from ...snap.timestamps import WIB, format_timestamp, parse_timestamp
from ...snap.tokens import TokenIssuer, encode_jwt
from ..simulator import DokuSimulator, SignedRequest, inquiry_body, payment_body
from .report import Exchange, GatewayUnreachable, ScenarioResult, UatReport, UatTarget

# DOKU's create-VA validator allows only these characters in a VA name (spec §7.3).
_VA_NAME = re.compile(r"[A-Za-z0-9 .\-/+,=_:'@%]{1,255}")
_NON_ASCII_NOTE = "Budi Śantoso / Jl. Merdeka"  # a non-ASCII name with a '/', spec §15.4
_SLOW_SECONDS = 3.0
_SHOWN_RESPONSE_HEADERS = ("content-type", "x-timestamp", "x-client-key")
# Unauthorized (bad X-SIGNATURE) and Invalid Token on the inquiry and the notification; 4012701
# is DOKU's SDK's code for the notification (spec §8.3).
_SIGNATURE_REFUSED = ("4012400", "4012500")
_TOKEN_REFUSED = ("4012401", "4012501", "4012701")


class _Skip(Exception):
    """A scenario that cannot run with what was given (its reason is shown)."""


class _Recorder:
    def __init__(self) -> None:
        self.exchanges: tuple[Exchange, ...] = ()
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.cause: str | None = None

    def check(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return condition


Scenario = Callable[[_Recorder], Awaitable[None]]


class _Run:
    """One run: the session's token, the payable bill it saw, the signature cause it probed."""

    def __init__(self, target: UatTarget, client: httpx.AsyncClient) -> None:
        self.target = target
        self.client = client
        self.prefix = urlsplit(target.url).path.rstrip("/")
        paths = target.paths
        self.inquiry_path = self.prefix + paths.inquiry
        key = target.doku_private_key or target.merchant_private_key
        if key is None:
            raise ValueError("give the DOKU-side private key, or the merchant private key")
        if target.samples.payable is None:
            raise ValueError("the payable sample VA is required")
        self.simulator = DokuSimulator(
            target.client_id,
            target.client_secret,
            key,
            token_path=self.prefix + paths.token,
            inquiry_path=self.inquiry_path,
            payment_path=self.prefix + paths.payment,
        )
        self.answered = False
        self.token: str | None = None
        self.minted = False
        self.bill: dict[str, Any] | None = None
        self.signature_cause: str | None = None
        self.clock_offset: float | None = None
        self.payment: tuple[dict[str, Any], dict[str, Any]] | None = None

    async def run(self) -> UatReport:
        plan: list[tuple[str, str, str, Scenario]] = [
            ("token", "Access token", "2007300, a Bearer token", self._token),
            ("token-bad-signature", "Token, bad signature", "4017300", self._token_bad),
            ("inquiry-payable", "Inquiry: payable bill", "2002400 with the bill", self._payable),
            ("inquiry-open", "Inquiry: open amount", "2002400, type O, 0.00", self._open),
            ("inquiry-limits", "Inquiry: limit amounts", "minAmount <= maxAmount", self._limits),
            ("inquiry-paid", "Inquiry: bill already paid", "4042414", self._outcome("paid")),
            ("inquiry-expired", "Inquiry: bill expired", "4042419", self._outcome("expired")),
            ("inquiry-unknown", "Inquiry: unknown VA", "4042412", self._outcome("unknown")),
            ("replay-identical", "Replay, same body", "the first answer again", self._replay),
            ("replay-other-body", "Replay, other body", "4092400", self._conflict),
            ("bad-signature", "Bad X-SIGNATURE", "4012400", self._bad_signature),
            ("expired-token", "Expired token", "4012401", self._expired_token),
            ("stale-timestamp", "Stale X-TIMESTAMP", "4002401", self._stale),
            ("pretty-body", "Pretty-printed body", "2002400", self._pretty),
            ("non-ascii-body", "Non-ASCII body, signed as JS/PHP/Java do", "2002400", self._utf8),
            ("payment", "Payment notification", "2002500", self._payment),
            ("payment-repeat", "Payment notification again", "2002500, same ack", self._repeat),
        ]
        results = [await self._play(*entry) for entry in plan]
        return UatReport(self.target.url, self.target.client_id, tuple(results), self.clock_offset)

    async def _play(self, id: str, title: str, expected: str, scenario: Scenario) -> ScenarioResult:
        recorder = _Recorder()
        try:
            await scenario(recorder)
        except _Skip as skip:
            return ScenarioResult(id, title, expected, "skip", notes=(str(skip),))
        if not recorder.problems:
            notes = tuple(recorder.notes)
            return ScenarioResult(id, title, expected, "pass", (), notes, None, recorder.exchanges)
        cause = recorder.cause or self._cause(recorder)
        return ScenarioResult(
            id,
            title,
            expected,
            "fail",
            tuple(recorder.problems),
            tuple(recorder.notes),
            cause,
            recorder.exchanges,
        )

    # --- the wire ---------------------------------------------------------------------------

    async def _send(self, recorder: _Recorder, request: SignedRequest) -> dict[str, Any] | None:
        """POST ``request`` and record the exchange; the answer's JSON object, if it is one."""
        sent = Exchange(
            "POST",
            request.path,
            _safe_headers(request.headers),
            request.body.decode("utf-8", "replace"),
        )
        started = time.monotonic()
        try:
            response = await self.client.post(
                request.path, headers=request.headers, content=request.body
            )
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            if not self.answered:
                raise GatewayUnreachable(self.target.url, reason) from None
            recorder.exchanges += (replace(sent, error=reason),)
            return None
        elapsed = time.monotonic() - started
        self.answered = True
        try:
            document: Any = response.json()
        except ValueError:
            document = None
        timestamp = response.headers.get("x-timestamp")
        if timestamp and self.clock_offset is None:
            # A header in whole seconds is the server's time rounded down: half a second on
            # average, which would show a synchronised clock as -1 s half of the time.
            half = 0.0 if "." in timestamp else 0.5
            with contextlib.suppress(ValueError):
                moment = parse_timestamp(timestamp).timestamp() + half
                self.clock_offset = round(moment - time.time())
        headers = {k: v for k, v in response.headers.items() if k in _SHOWN_RESPONSE_HEADERS}
        recorder.exchanges += (
            replace(
                sent,
                status=response.status_code,
                response_headers=headers,
                response_body=_safe_body(document) if document is not None else response.text,
                elapsed_ms=round(elapsed * 1000, 1),
            ),
        )
        if elapsed > _SLOW_SECONDS:
            recorder.notes.append(f"answered in {elapsed:.1f} s; banks allow about 8 s in all")
        return document if isinstance(document, dict) else None

    def _expect(
        self,
        recorder: _Recorder,
        answer: dict[str, Any] | None,
        code: str,
        wrong: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """Check the SNAP code, and the HTTP status is its first three digits; on another code,
        ``wrong`` names the cause. The answer when it has ``code``."""
        exchange = recorder.exchanges[-1]
        if answer is None or "responseCode" not in answer:
            shape = "no answer" if exchange.status is None else f"HTTP {exchange.status}"
            recorder.problems.append(f"expected {code}; {shape}, not a SNAP answer")
            return None
        got = str(answer["responseCode"])
        if got != code:
            message = answer.get("responseMessage", "")
            recorder.problems.append(f"expected {code}, got {got} {message}".rstrip())
            if wrong and got in wrong:
                recorder.cause = wrong[got]
            return None
        recorder.check(
            exchange.status == int(code[:3]),
            f"HTTP {exchange.status} for {code} (SNAP: the code's first three digits)",
        )
        return answer

    # --- tokens -----------------------------------------------------------------------------

    async def _access_token(self) -> str:
        if self.token is not None:
            return self.token
        key = self.target.merchant_private_key
        if key is None:
            raise _Skip("no access token: the token call failed")
        issuer = TokenIssuer(key, self.target.client_id, self.target.token_issuer)
        self.token = issuer.issue().access_token
        self.minted = True
        return self.token

    async def _token(self, recorder: _Recorder) -> None:
        if self.target.doku_private_key is None:
            raise _Skip("no DOKU-side private key: tokens are minted with the merchant key")
        body = self._expect(
            recorder, await self._send(recorder, self.simulator.token_request()), "2007300"
        )
        if body is None:
            return
        token = body.get("accessToken")
        if recorder.check(isinstance(token, str) and token != "", "no accessToken"):
            self.token = str(token)
        recorder.check(body.get("tokenType") == "Bearer", "tokenType is not 'Bearer'")
        expires = str(body.get("expiresIn"))
        recorder.check(expires.isdigit() and int(expires) > 0, "expiresIn is not seconds")
        recorder.check(
            recorder.exchanges[-1].response_headers.get("x-client-key") == self.target.client_id,
            "no X-CLIENT-KEY header with the client id",
        )

    async def _token_bad(self, recorder: _Recorder) -> None:
        request = self.simulator.token_request()
        key = self.target.doku_private_key or self.target.merchant_private_key
        assert key is not None
        # Signed over another client id: a well-formed signature the gateway must refuse.
        bad = sign_asymmetric(key, self.target.client_id + "-x", request.headers["X-TIMESTAMP"])
        request = replace(request, headers={**request.headers, "X-SIGNATURE": bad})
        accepted = {"2007300": "the gateway issued a token for a wrongly signed request"}
        self._expect(recorder, await self._send(recorder, request), "4017300", accepted)

    # --- inquiries --------------------------------------------------------------------------

    def _sample(self, name: str) -> str:
        va: str | None = getattr(self.target.samples, name)
        if va is None:
            raise _Skip(f"no sample VA for '{name}' (--va-{name})")
        return va.replace(" ", "")

    def _body(self, name: str) -> dict[str, Any]:
        code = self._sample(name)
        partner = self.target.samples.partner_service_id or code[:5]
        return inquiry_body(code, partner, channel=self.target.channel)

    async def _inquire(
        self,
        recorder: _Recorder,
        document: Mapping[str, Any],
        code: str,
        wrong: Mapping[str, str] | None = None,
        *,
        token: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """Send a signed inquiry; its ``virtualAccountData`` when answered ``code``."""
        request = self.simulator.inquiry_request(
            token or await self._access_token(), document, **kwargs
        )
        answer = self._expect(recorder, await self._send(recorder, request), code, wrong)
        if answer is None or code != "2002400":
            return answer
        data = answer.get("virtualAccountData")
        return data if recorder.check(isinstance(data, dict), "no virtualAccountData") else None

    async def _payable(self, recorder: _Recorder) -> None:
        document = self._body("payable")
        paid = {
            "4042414": "the resolver says the payable sample VA is paid (by an earlier uat "
            "run's payment?): give a fresh --va-payable"
        }
        data = await self._inquire(recorder, document, "2002400", paid)
        if data is None:
            if _refused_signature(recorder):
                await self._probe_signature(recorder, document)
            return
        _check_bill(recorder, document, data)
        headers = recorder.exchanges[-1].response_headers
        recorder.check("x-timestamp" in headers, "no X-TIMESTAMP response header")
        if not recorder.problems:
            self.bill = data

    async def _open(self, recorder: _Recorder) -> None:
        document = self._body("open")
        data = await self._inquire(recorder, document, "2002400")
        if data is None:
            return
        _check_bill(recorder, document, data)
        trx_type = data.get("virtualAccountTrxType")
        recorder.check(trx_type == "O", f"virtualAccountTrxType {trx_type!r}, not 'O'")
        value = (data.get("totalAmount") or {}).get("value")
        recorder.check(value in ("0", "0.00"), f"totalAmount.value {value!r}, not '0.00'")

    async def _limits(self, recorder: _Recorder) -> None:
        data = await self._inquire(recorder, self._body("open"), "2002400")
        if data is None:
            return
        config = (data.get("additionalInfo") or {}).get("virtualAccountConfig") or {}
        low, high = config.get("minAmount"), config.get("maxAmount")
        for name, value in (("minAmount", low), ("maxAmount", high)):
            recorder.check(
                isinstance(value, str) and is_amount(value),
                f"virtualAccountConfig.{name} {value!r} is not an amount like '10000.00'",
            )
        if isinstance(low, str) and isinstance(high, str) and is_amount(low) and is_amount(high):
            recorder.check(Decimal(low) <= Decimal(high), f"minAmount {low} > maxAmount {high}")
        recorder.check(
            data.get("virtualAccountTrxType") in ("O", "V"),
            "limits are only allowed with virtualAccountTrxType 'O' or 'V'",
        )

    def _outcome(self, name: str) -> Scenario:
        code = {"paid": "4042414", "expired": "4042419", "unknown": "4042412"}[name]
        wrong = {
            "2002400": f"the resolver answers a bill for the '{name}' sample VA: give one it "
            f"answers {name} for (--va-{name})",
            "4032400": "4032400 is DOKU's v1 mapping of 'expired'; DOKU's SNAP simulator and "
            "BI use 4042419 (spec §7.4)",
        }
        if name != "unknown":
            wrong["4042412"] = f"the resolver does not know the '{name}' sample VA"

        async def scenario(recorder: _Recorder) -> None:
            await self._inquire(recorder, self._body(name), code, wrong)

        return scenario

    # --- replay -----------------------------------------------------------------------------

    async def _replay(self, recorder: _Recorder) -> None:
        request = self.simulator.inquiry_request(await self._access_token(), self._body("payable"))
        first = self._expect(recorder, await self._send(recorder, request), "2002400")
        if first is None:
            return
        conflict = {
            "4092400": "an identical retry (same X-EXTERNAL-ID and body) was refused as a "
            "conflict; DOKU retries with the same request and expects the first answer"
        }
        again = self._expect(recorder, await self._send(recorder, request), "2002400", conflict)
        if again is not None:
            recorder.check(again == first, "the identical retry got another answer")

    async def _conflict(self, recorder: _Recorder) -> None:
        token = await self._access_token()
        external_id = secrets.token_hex(16)
        for code in ("2002400", "4092400"):
            # Same X-EXTERNAL-ID, another body (each has its own inquiryRequestId).
            request = self.simulator.inquiry_request(
                token, self._body("payable"), external_id=external_id
            )
            answered = {
                "2002400": "a reused X-EXTERNAL-ID with another body was answered: the replay "
                "guard is off, or not shared between the gateway's pods (cache.url)"
            }
            if self._expect(recorder, await self._send(recorder, request), code, answered) is None:
                return

    # --- refusals ---------------------------------------------------------------------------

    async def _bad_signature(self, recorder: _Recorder) -> None:
        token = await self._access_token()
        document = self._body("payable")
        request = self.simulator.inquiry_request(token, document)
        # A real signature of another body: the right shape, the wrong content.
        other = self.simulator.inquiry_request(token, {**document, "inquiryRequestId": "x"})
        headers = {**request.headers, "X-SIGNATURE": other.headers["X-SIGNATURE"]}
        accepted = {
            "2002400": "the gateway answered a request with a bad signature: "
            "security.signature_mode is log-only; set it to enforce before production"
        }
        answer = await self._send(recorder, replace(request, headers=headers))
        self._expect(recorder, answer, "4012400", accepted)

    async def _expired_token(self, recorder: _Recorder) -> None:
        token = await self._access_token()
        now = int(time.time())
        key = self.target.merchant_private_key
        if key is not None:
            claims = {
                "iss": self.target.token_issuer,
                "iat": now - 7200,
                "exp": now - 3600,
                "clientId": self.target.client_id,
                "jti": secrets.token_hex(12),
            }
            expired = encode_jwt(claims, key)
        else:
            # Without the merchant key, the issued token with its exp moved an hour back:
            # expired, though its signature no longer matches either.
            expired = _backdated(token, now - 3600)
            recorder.notes.append("no merchant key: a backdated copy of the issued token is sent")
        accepted = {"2002400": "the gateway accepted an expired token"}
        await self._inquire(recorder, self._body("payable"), "4012401", accepted, token=expired)

    async def _stale(self, recorder: _Recorder) -> None:
        age = self.target.timestamp_skew + 600
        stale = format_timestamp(datetime.now(WIB) - timedelta(seconds=age))
        accepted = {
            "2002400": f"an X-TIMESTAMP {age:.0f} s old was accepted: security.timestamp_skew "
            "is too large"
        }
        await self._inquire(recorder, self._body("payable"), "4002401", accepted, timestamp=stale)

    # --- body forms -------------------------------------------------------------------------

    async def _pretty(self, recorder: _Recorder) -> None:
        # DOKU's docs show pretty bodies; the signature covers the minified form.
        refused = {
            code: "a pretty-printed body fails its signature: the gateway (or a proxy) hashes "
            "the raw body, not the minified JSON"
            for code in _SIGNATURE_REFUSED
        }
        if self.signature_cause is not None:  # every signed call fails: that is the cause
            refused = {}
        await self._inquire(recorder, self._body("payable"), "2002400", refused, pretty=True)

    async def _utf8(self, recorder: _Recorder) -> None:
        # JavaScript, PHP and Java sign the minified body with non-ASCII kept as UTF-8 (and '/'
        # unescaped); sent pretty, so only re-minifying the same way verifies it.
        document = self._body("payable")
        document["additionalInfo"] = {**document["additionalInfo"], "note": _NON_ASCII_NOTE}
        refused = {
            code: "a non-ASCII body signed as JSON.stringify/PHP/Jackson minify it fails: the "
            "gateway re-minifies with \\uXXXX escapes only, or a proxy re-encodes the body"
            for code in _SIGNATURE_REFUSED
        }
        if self.signature_cause is not None:
            refused = {}
        await self._inquire(recorder, document, "2002400", refused, pretty=True, ensure_ascii=False)

    # --- payments ---------------------------------------------------------------------------

    def _payment_document(self) -> dict[str, Any]:
        if not self.target.payments:
            raise _Skip("payments disabled (--no-payment)")
        if self.bill is None:
            raise _Skip("needs the payable bill (inquiry-payable failed)")
        bill = self.bill
        va = self._sample("payable")
        partner = self.target.samples.partner_service_id or va[:5]
        amount = str((bill.get("totalAmount") or {}).get("value", "0.00"))
        trx_id = (bill.get("additionalInfo") or {}).get("trxId") or f"UAT-{va}"
        document = payment_body(va, partner, amount, trx_id=trx_id, channel=self.target.channel)
        document["virtualAccountName"] = bill.get("virtualAccountName", "UAT")
        document["virtualAccountTrxType"] = bill.get("virtualAccountTrxType", "C")
        return document

    async def _payment(self, recorder: _Recorder) -> None:
        document = self._payment_document()
        request = self.simulator.payment_request(await self._access_token(), document)
        ack = self._expect(recorder, await self._send(recorder, request), "2002500")
        data = (ack or {}).get("virtualAccountData")
        if ack is None or not recorder.check(isinstance(data, dict), "no virtualAccountData"):
            return
        assert isinstance(data, dict)
        for key in ("paymentRequestId", "virtualAccountNo", "partnerServiceId", "customerNo"):
            recorder.check(data.get(key) == document[key], f"virtualAccountData.{key} not echoed")
        self.payment = (document, ack)

    async def _repeat(self, recorder: _Recorder) -> None:
        if self.payment is None:
            self._payment_document()  # the same skip reasons, where they apply
            raise _Skip("needs the first payment notification (payment failed)")
        document, first = self.payment
        # DOKU's retry: the same paymentRequestId under a new X-EXTERNAL-ID.
        request = self.simulator.payment_request(await self._access_token(), document)
        ack = self._expect(recorder, await self._send(recorder, request), "2002500")
        if ack is not None:
            recorder.check(
                ack.get("virtualAccountData") == first.get("virtualAccountData"),
                "the repeat was acknowledged with other data than the first",
            )

    # --- causes -----------------------------------------------------------------------------

    async def _probe_signature(self, recorder: _Recorder, document: Mapping[str, Any]) -> None:
        """A signed call was refused: try the paths a proxy may present to the gateway."""
        token = await self._access_token()
        inquiry = self.target.paths.inquiry
        tries: dict[str, str] = {}
        if self.prefix:
            tries[inquiry] = (
                f"the gateway verifies the path without {self.prefix!r}: the proxy strips it, "
                f"so set http.path_prefix = {self.prefix!r} in the gateway's config"
            )
        gateway_prefix = self.target.gateway_path_prefix.rstrip("/")
        if gateway_prefix and gateway_prefix != self.prefix:
            tries[gateway_prefix + inquiry] = (
                f"the gateway verifies with http.path_prefix {gateway_prefix!r}, but uat calls "
                f"{self.target.url} as DOKU would: make the URL and http.path_prefix agree"
            )
        self.signature_cause = (
            "every signed call is refused while the token works: the client secret differs "
            "from the gateway's doku.client_secret, or a proxy rewrites the path or body "
            "(set security.signature_diagnostics = true on the gateway: its log names which)"
        )
        for signed_path, cause in tries.items():
            request = self.simulator.transaction_request(signed_path, token, document)
            answer = await self._send(recorder, replace(request, path=self.inquiry_path))
            if answer is not None and answer.get("responseCode") == "2002400":
                self.signature_cause = cause
                break
        recorder.cause = self.signature_cause

    def _cause(self, recorder: _Recorder) -> str | None:
        """The likely cause of a failure, read from the last answer."""
        answered = [e for e in recorder.exchanges if e.status is not None]
        if not answered:
            error = recorder.exchanges[-1].error if recorder.exchanges else None
            return f"the connection failed mid-run ({error})" if error else None
        last = answered[-1]
        body = last.response_body if isinstance(last.response_body, dict) else {}
        code = str(body.get("responseCode", ""))
        message = str(body.get("responseMessage", ""))
        if not code:
            if last.status in (404, 405):
                return (
                    f"HTTP {last.status} without a SNAP answer on {last.path}: nothing serves "
                    "this path; a wrong path prefix in the URL, an ingress/proxy rule, or "
                    "paths.* differ from the gateway's config" + self._prefix_hint()
                )
            return (
                f"HTTP {last.status} from something that is not the gateway (a proxy or load "
                "balancer): is the gateway up, ready and routed?"
            )
        if "X-TIMESTAMP" in message:
            offset = self.clock_offset
            measured = "" if offset is None else f" (the gateway's clock is {offset:+.0f} s off)"
            return (
                "X-TIMESTAMP refused: the clocks differ or security.timestamp_skew is too small"
                + measured
            )
        if code == "4017300":
            if "X-CLIENT-KEY" in message:
                return "the gateway's doku.client_id is not the client id uat sends"
            return (
                "the token request's signature is refused: the gateway's doku.public_key is not "
                "the pair of the DOKU-side private key uat signs with"
            )
        if code in _SIGNATURE_REFUSED:
            return self.signature_cause or (
                "X-SIGNATURE refused: the client secret differs from the gateway's, or a proxy "
                "rewrites the path or body"
            )
        if code in _TOKEN_REFUSED:
            if self.minted:
                return (
                    "the token minted with the merchant key is refused: it is not the gateway's "
                    "merchant.private_key, or security.token_issuer or the client id differ"
                )
            return "the gateway refused its own token: pods with different merchant keys?"
        if code.startswith("400"):
            return f"the gateway refused the body ({message}): check --partner-service-id"
        if code.startswith("504"):
            return "the resolver took longer than inquiry.resolver_timeout"
        if code.startswith("5"):
            return "the gateway or its resolver failed: see the gateway's log"
        return None

    def _prefix_hint(self) -> str:
        gateway_prefix = self.target.gateway_path_prefix.rstrip("/")
        if gateway_prefix and gateway_prefix != self.prefix:
            return f" (the config's http.path_prefix is {gateway_prefix!r})"
        return ""


def _check_bill(recorder: _Recorder, sent: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    """The fields DOKU relays to the bank (spec §7.3): echoes byte for byte, name, amount."""
    for key in ("partnerServiceId", "customerNo", "virtualAccountNo", "inquiryRequestId"):
        recorder.check(data.get(key) == sent[key], f"virtualAccountData.{key} not echoed verbatim")
    name = data.get("virtualAccountName")
    recorder.check(
        isinstance(name, str) and _VA_NAME.fullmatch(name) is not None,
        f"virtualAccountName {name!r} outside DOKU's characters [A-Za-z0-9 .-/+,=_:'@%]",
    )
    amount = data.get("totalAmount") or {}
    value = amount.get("value")
    recorder.check(
        value in ("0", "0.00") or (isinstance(value, str) and is_amount(value)),
        f"totalAmount.value {value!r} is not an amount like '25000.00'",
    )
    recorder.check(amount.get("currency") == "IDR", "totalAmount.currency is not IDR")
    trx_type = data.get("virtualAccountTrxType")
    recorder.check(trx_type in ("C", "O", "V"), f"virtualAccountTrxType {trx_type!r}")
    if trx_type == "C" and isinstance(value, str) and is_amount(value):
        recorder.check(Decimal(value) > 0, "a closed bill of 0.00")
    recorder.check(data.get("inquiryStatus") == "00", "inquiryStatus is not '00'")
    reason = data.get("inquiryReason") or {}
    recorder.check(
        isinstance(reason, dict) and "english" in reason and "indonesia" in reason,
        "no inquiryReason.english/indonesia",
    )
    info = data.get("additionalInfo") or {}
    recorder.check(
        info.get("channel") == sent["additionalInfo"]["channel"],
        "additionalInfo.channel not echoed",
    )
    if not info.get("trxId"):
        recorder.notes.append("no additionalInfo.trxId: DOKU carries it into the notification")
    expired = data.get("expiredDate")
    if expired is not None:
        try:
            datetime.strptime(str(expired), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            recorder.problems.append(f"expiredDate {expired!r} is not YYYY-MM-DDTHH:MM:SS+07:00")


def _refused_signature(recorder: _Recorder) -> bool:
    body = recorder.exchanges[-1].response_body if recorder.exchanges else None
    return isinstance(body, dict) and body.get("responseCode") in _SIGNATURE_REFUSED


def _short(secret: str) -> str:
    return f"{secret[:10]}…({len(secret)} chars)" if len(secret) > 16 else "…"


def _safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Request headers with the token and the signature cut to a recognisable stub."""
    safe = dict(headers)
    if "X-SIGNATURE" in safe:
        safe["X-SIGNATURE"] = _short(safe["X-SIGNATURE"])
    if "Authorization" in safe:
        scheme, _, token = safe["Authorization"].partition(" ")
        safe["Authorization"] = f"{scheme} {_short(token)}"
    return safe


def _safe_body(document: Any) -> Any:
    if isinstance(document, dict) and isinstance(document.get("accessToken"), str):
        return {**document, "accessToken": _short(document["accessToken"])}
    return document


def _backdated(token: str, exp: int) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = exp
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"
