"""Requests as DOKU sends them: the token, one signed inquiry (cache-hit mode), and tables of
distinct pre-signed inquiries or payment notifications (cache-miss and payment modes).

A table is a body template with one fixed-width index field plus one X-SIGNATURE per index,
written to a file that the wrk script reads at start: every request of a table has its own VA
number, inquiryRequestId / paymentRequestId and signature, and the table costs 88 bytes per
request instead of a full request. X-EXTERNAL-ID is not signed, so wrk makes it up per request.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _proc import BenchError
from _targets import Target

from gateway.doku.simulator import DokuSimulator, SignedRequest, inquiry_body, payment_body
from gateway.resolvers.demo import DemoFiles
from gateway.snap.canonical import minify
from gateway.snap.signature import SymmetricSigner
from gateway.snap.timestamps import format_timestamp

INDEX_WIDTH = 7
MAX_TABLE: int = 10**INDEX_WIDTH - 1
PLACEHOLDER = "#" * INDEX_WIDTH
SIGNATURE_LENGTH = 88  # base64 of an HMAC-SHA512
PAID_AMOUNT = "25000.00"  # the demo resolver's closed bill
CODES = {"inquiry": "2002400", "payment": "2002500"}


@dataclass
class Credentials:
    simulator: DokuSimulator
    files: DemoFiles
    token: str = ""
    token_at: float = 0.0


def fetch_token(creds: Credentials, client: httpx.Client, gateway_url: str) -> None:
    request = creds.simulator.token_request()
    response = client.post(
        gateway_url + request.path, headers=request.headers, content=request.body, timeout=10.0
    )
    document = response.json()
    if response.status_code != 200 or document.get("responseCode") != "2007300":
        raise BenchError(f"token refused by the gateway: {response.status_code} {document}")
    creds.token = str(document["accessToken"])
    creds.token_at = time.monotonic()


def signed_inquiry(creds: Credentials, payment_code: str, partner_service_id: str) -> SignedRequest:
    document = inquiry_body(payment_code, partner_service_id)
    return creds.simulator.inquiry_request(creds.token, document)


def payment_code(partner_service_id: str, run: int, index: str) -> str:
    """A VA of the demo's closed-bill range (no 116…119 prefix), unique per (run, index)."""
    return f"{partner_service_id.strip()}7{run:03d}{index}"


def _document(kind: str, partner_service_id: str, run: int, index: str, when: str) -> Any:
    code = payment_code(partner_service_id, run, index)
    if kind == "inquiry":
        document = inquiry_body(
            code, partner_service_id, inquiry_request_id=f"bench{run:03d}i{index}"
        )
        document["trxDateInit"] = when
    else:
        document = payment_body(
            code,
            partner_service_id,
            PAID_AMOUNT,
            payment_request_id=f"bench{run:03d}p{index}",
            trx_id=f"DEMO-{code}",
        )
        document["trxDateTime"] = when
    return document


def fresh_request(
    creds: Credentials, kind: str, partner_service_id: str, number: int
) -> tuple[SignedRequest, str]:
    """One request of the table shape, outside any table (run 0), and its payment code: for
    answer checks."""
    index = f"{number:0{INDEX_WIDTH}d}"
    document = _document(kind, partner_service_id, 0, index, format_timestamp())
    code = payment_code(partner_service_id, 0, index)
    if kind == "inquiry":
        return creds.simulator.inquiry_request(creds.token, document), code
    return creds.simulator.payment_request(creds.token, document), code


@dataclass(frozen=True)
class RequestTable:
    kind: str  # inquiry or payment
    run: int
    path: str
    headers: dict[str, str]  # every header but X-SIGNATURE and X-EXTERNAL-ID
    segments: list[bytes]  # body = index.join(segments)
    size: int
    signatures: Path  # size x SIGNATURE_LENGTH bytes, in index order
    partner_service_id: str
    seconds: float  # time taken to sign

    def body(self, index: int) -> bytes:
        return f"{index:0{INDEX_WIDTH}d}".encode().join(self.segments)


def build_table(
    creds: Credentials, kind: str, run: int, size: int, partner_service_id: str, directory: Path
) -> RequestTable:
    """Sign ``size`` distinct requests now (X-TIMESTAMP = now, within the gateway's window for
    the next few minutes) and write their signatures to ``directory``."""
    if not 1 <= size <= MAX_TABLE:
        raise BenchError(f"a request table holds 1..{MAX_TABLE} requests, not {size}")
    started = time.perf_counter()
    when = format_timestamp()
    template = minify(_document(kind, partner_service_id, run, PLACEHOLDER, when))
    segments = template.split(PLACEHOLDER.encode())
    simulator = creds.simulator
    path = simulator.inquiry_path if kind == "inquiry" else simulator.payment_path
    # The template must give exactly what the simulator would send for the same values.
    for index in {0, size // 2, size - 1}:
        text = f"{index:0{INDEX_WIDTH}d}"
        expected = minify(_document(kind, partner_service_id, run, text, when))
        if text.encode().join(segments) != expected:
            raise BenchError(f"the {kind} body template does not reproduce the simulator's body")
    sample = simulator.transaction_request(
        path,
        creds.token,
        _document(kind, partner_service_id, run, "0" * INDEX_WIDTH, when),
        timestamp=when,
    )
    headers = {
        name: value
        for name, value in sample.headers.items()
        if name.lower() not in ("x-signature", "x-external-id")
    }
    signer = SymmetricSigner.from_secret(simulator.client_secret)
    token = creds.token
    signatures = bytearray()
    for index in range(size):
        body = f"{index:0{INDEX_WIDTH}d}".encode().join(segments)
        signatures += signer.sign("POST", path, token, body, when).encode("ascii")
    if len(signatures) != size * SIGNATURE_LENGTH:
        raise BenchError("an X-SIGNATURE is not 88 base64 characters long")
    if signatures[:SIGNATURE_LENGTH].decode() != sample.headers["X-SIGNATURE"]:
        raise BenchError("the table's first X-SIGNATURE differs from the simulator's")
    file = directory / f"signatures-{kind}-{run:03d}.bin"
    file.write_bytes(signatures)
    return RequestTable(
        kind,
        run,
        path,
        headers,
        segments,
        size,
        file,
        partner_service_id,
        time.perf_counter() - started,
    )


def _bill(answer: bytes) -> dict[str, Any]:
    data = json.loads(answer)["virtualAccountData"]
    bill: dict[str, Any] = {
        "virtualAccountName": data["virtualAccountName"],
        "totalAmount": data["totalAmount"],
        "virtualAccountTrxType": data["virtualAccountTrxType"],
    }
    for key in ("virtualAccountEmail", "virtualAccountPhone"):
        if key in data:
            bill[key] = data[key]
    return bill


def peer_bill(answer: bytes, code: str) -> bytes:
    """The bill the peer reads for ``code``, copied from the gateway's own answer so that both
    send the same data."""
    return json.dumps({**_bill(answer), "trxId": f"DEMO-{code}"}).encode()


def peer_bills(answer: bytes, table: RequestTable) -> Iterator[tuple[bytes, bytes]]:
    """``(va:<payment code>, bill JSON)`` for every VA of ``table``."""
    bill = _bill(answer)
    for index in range(table.size):
        code = payment_code(table.partner_service_id, table.run, f"{index:0{INDEX_WIDTH}d}")
        bill["trxId"] = f"DEMO-{code}"
        yield f"va:{code}".encode(), json.dumps(bill).encode()


def check_answer(
    target: Target, client: httpx.Client, request: SignedRequest, mode: str, kind: str
) -> bytes:
    """One request (which also warms the target); its success answer, or ``BenchError``."""
    headers = dict(request.headers)
    headers["X-EXTERNAL-ID"] = "check" + secrets.token_hex(8)
    try:
        response = client.post(
            target.url + request.path, headers=headers, content=request.body, timeout=10.0
        )
    except httpx.HTTPError as exc:
        raise BenchError(f"{target.name}: check request failed: {exc!r}") from None
    body = response.content
    code = ""
    with contextlib.suppress(ValueError, AttributeError):
        code = str(response.json().get("responseCode"))
    if response.status_code != 200 or code != CODES[kind]:
        raise BenchError(
            f"{target.name} ({mode}): check request answered {response.status_code} "
            f"{code or '?'}: {body[:300]!r}"
        )
    target.answer_bytes[mode] = len(body)
    return body
