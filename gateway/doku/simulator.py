"""Acting as DOKU toward a gateway: signed token requests and signed inquiries.

Used by ``doku-gateway simulate``, by the tests and by the benchmarks. It signs the way DOKU's
non-Python senders do (minified, UTF-8 unescaped) unless told to send another body form.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from ..snap.canonical import minify
from ..snap.signature import SymmetricSigner, sign_asymmetric
from ..snap.timestamps import format_timestamp

__all__ = ["DokuSimulator", "SignedRequest", "inquiry_body", "payment_body"]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


def inquiry_body(
    payment_code: str,
    partner_service_id: str,
    *,
    inquiry_request_id: str | None = None,
    channel: str = "VIRTUAL_ACCOUNT_BTN",
) -> dict[str, Any]:
    """A body as DOKU sends it: ``partnerServiceId`` left-padded to 8, VA = prefix + customer."""
    prefix = partner_service_id.strip()
    if not payment_code.startswith(prefix):
        raise ValueError(f"payment code {payment_code} does not start with {prefix}")
    customer = payment_code[len(prefix) :]
    padded = prefix.rjust(8)
    return {
        "partnerServiceId": padded,
        "customerNo": customer,
        "virtualAccountNo": padded + customer,
        "trxDateInit": format_timestamp(),
        "channelCode": 6011,
        "language": "ID",
        "inquiryRequestId": inquiry_request_id or secrets.token_hex(16),
        "additionalInfo": {"channel": channel},
    }


def payment_body(
    payment_code: str,
    partner_service_id: str,
    amount: str,
    *,
    payment_request_id: str | None = None,
    trx_id: str | None = None,
    channel: str = "VIRTUAL_ACCOUNT_BTN",
) -> dict[str, Any]:
    """A payment notification body as DOKU sends it (spec §8.2)."""
    document = inquiry_body(payment_code, partner_service_id, channel=channel)
    return {
        "partnerServiceId": document["partnerServiceId"],
        "customerNo": document["customerNo"],
        "virtualAccountNo": document["virtualAccountNo"],
        "virtualAccountName": "Demo Customer",
        "trxId": trx_id or f"DEMO-{payment_code}",
        "paymentRequestId": payment_request_id or secrets.token_hex(16),
        "paidAmount": {"value": amount, "currency": "IDR"},
        "trxDateTime": format_timestamp(),
        "virtualAccountTrxType": "C",
        "additionalInfo": {
            "channel": channel,
            "senderName": "Budi",
            "sourceAccountNo": "1234567890",
            "sourceBankCode": "200",
            "sourceBankName": "BTN",
        },
    }


@dataclass(slots=True)
class DokuSimulator:
    """Builds the requests DOKU would send to ``base_url`` with the given credentials."""

    client_id: str
    client_secret: str = field(repr=False)
    doku_private_key: rsa.RSAPrivateKey = field(repr=False)
    token_path: str = "/v1.0/access-token/b2b"
    inquiry_path: str = "/v1.1/transfer-va/inquiry"
    payment_path: str = "/v1.0/transfer-va/payment"
    channel_id: str = "VA004"

    def token_request(self, timestamp: str | None = None) -> SignedRequest:
        timestamp = timestamp or format_timestamp()
        body = minify({"grantType": "client_credentials", "additionalInfo": {}})
        return SignedRequest(
            self.token_path,
            {
                "Content-Type": "application/json",
                "X-TIMESTAMP": timestamp,
                "X-CLIENT-KEY": self.client_id,
                "X-SIGNATURE": sign_asymmetric(self.doku_private_key, self.client_id, timestamp),
            },
            body,
        )

    def transaction_request(
        self,
        path: str,
        token: str,
        document: Mapping[str, Any],
        *,
        timestamp: str | None = None,
        external_id: str | None = None,
        pretty: bool = False,
        ensure_ascii: bool = False,
    ) -> SignedRequest:
        """Sign the minified ``document``; send it minified, or pretty-printed if ``pretty``
        (DOKU's docs show pretty bodies; the signature still covers the minified form)."""
        timestamp = timestamp or format_timestamp()
        signed = minify(document, ensure_ascii=ensure_ascii)
        signature = SymmetricSigner.from_secret(self.client_secret).sign(
            "POST", path, token, signed, timestamp
        )
        body = (
            json.dumps(document, indent=2, ensure_ascii=ensure_ascii).encode("utf-8")
            if pretty
            else signed
        )
        return SignedRequest(
            path,
            {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
                "X-TIMESTAMP": timestamp,
                "X-SIGNATURE": signature,
                "X-PARTNER-ID": self.client_id,
                "X-EXTERNAL-ID": external_id or secrets.token_hex(16),
                "CHANNEL-ID": self.channel_id,
            },
            body,
        )

    def inquiry_request(
        self, token: str, document: Mapping[str, Any], **kwargs: Any
    ) -> SignedRequest:
        return self.transaction_request(self.inquiry_path, token, document, **kwargs)

    def payment_request(
        self, token: str, document: Mapping[str, Any], **kwargs: Any
    ) -> SignedRequest:
        return self.transaction_request(self.payment_path, token, document, **kwargs)

    async def get_token(self, client: httpx.AsyncClient) -> str:
        """POST the token request; return the access token or raise ``RuntimeError``."""
        request = self.token_request()
        response = await client.post(request.path, headers=request.headers, content=request.body)
        document = response.json()
        if document.get("responseCode") != "2007300":
            raise RuntimeError(
                f"token refused: {document.get('responseCode')} {document.get('responseMessage')}"
            )
        return str(document["accessToken"])

    async def send(self, client: httpx.AsyncClient, request: SignedRequest) -> httpx.Response:
        return await client.post(request.path, headers=request.headers, content=request.body)
