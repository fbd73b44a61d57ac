"""Signature diagnostics: each known sender mistake is produced here and must be named."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from typing import Any

import pytest

from gateway.snap.canonical import minify
from gateway.snap.diagnostics import (
    Diagnosis,
    ReceivedRequest,
    diagnose_clock,
    diagnose_signature,
)
from gateway.snap.keys import generate_private_key
from gateway.snap.signature import sign_asymmetric

SECRET = "SK-TestSecret-0123456789abcdef"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MTQ1MzU2MzB9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
PATH = "/v1.1/transfer-va/inquiry"
TIMESTAMP = "2024-05-01T10:15:30+07:00"
NOW = 1714533330.0  # TIMESTAMP as POSIX time
DOCUMENT: dict[str, Any] = {
    "partnerServiceId": "   88899",
    "customerNo": "00001234",
    "virtualAccountNo": "   8889900001234",
    "inquiryRequestId": "req-1",
    "additionalInfo": {"channel": "VIRTUAL_ACCOUNT_BTN", "note": "Budi Śantoso / Jl. Merdeka"},
}
MINIFIED = minify(DOCUMENT)


def mac(
    body: bytes,
    *,
    path: str = PATH,
    token: str = TOKEN,
    timestamp: str = TIMESTAMP,
    upper: bool = False,
    secret: str = SECRET,
) -> bytes:
    """The HMAC-SHA512 a sender computes, with any of its parts chosen by the test."""
    digest = hashlib.sha256(body).hexdigest()
    if upper:
        digest = digest.upper()
    message = f"POST:{path}:{token}:{digest}:{timestamp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha512).digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def received(signature: str, **changes: Any) -> ReceivedRequest:
    request = ReceivedRequest(
        method="POST",
        path=PATH,
        query="",
        prefix="",
        authorization=f"Bearer {TOKEN}",
        token=TOKEN,
        raw=MINIFIED,
        document=DOCUMENT,
        timestamp=TIMESTAMP,
        signature=signature,
    )
    return dataclasses.replace(request, **changes)


def diagnose(request: ReceivedRequest) -> Diagnosis:
    diagnosis = diagnose_signature(SECRET.encode(), request, NOW)
    # Whatever it found, the line must not carry the secret, the token or the signature.
    for secret in (SECRET, TOKEN, request.signature):
        assert secret not in diagnosis.message
    assert "\n" not in diagnosis.message
    return diagnosis


# --- body forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "cause", "phrase"),
    [
        (json.dumps(DOCUMENT, indent=2, ensure_ascii=False).encode(), "body:pretty", "pretty"),
        (json.dumps(DOCUMENT, indent=2).encode(), "body:pretty", "\\u escapes"),
        (json.dumps(DOCUMENT, indent=4, ensure_ascii=False).encode(), "body:pretty", "by 4"),
        (json.dumps(DOCUMENT).encode(), "body:spaced", "json.dumps"),
        (
            json.dumps(
                DOCUMENT, separators=(",", ":"), ensure_ascii=False, sort_keys=True
            ).encode(),
            "body:sorted",
            "sorted",
        ),
        (
            json.dumps(DOCUMENT, separators=(",", ":")).replace("/", "\\/").encode(),
            "body:escaped-slashes",
            "JSON_UNESCAPED_SLASHES",
        ),
        (b"", "body:empty", "empty body"),
    ],
)
def test_a_body_hashed_in_another_form_is_named(body: bytes, cause: str, phrase: str) -> None:
    diagnosis = diagnose(received(b64(mac(body))))
    assert diagnosis.causes == (cause,)
    assert phrase in diagnosis.message


def test_a_body_hashed_without_its_trailing_newline_is_named() -> None:
    # curl --data-binary @body.json sends the file's last newline; the sender hashed the text
    # without it (laid out by hand, so no minified or pretty form can match either).
    laid_out = json.dumps(DOCUMENT, indent=3, ensure_ascii=False).encode()
    diagnosis = diagnose(received(b64(mac(laid_out)), raw=laid_out + b"\n"))
    assert diagnosis.causes == ("body:trimmed",)


@pytest.mark.parametrize(
    "signed",
    [
        MINIFIED,  # JSON.stringify, PHP unescaped, Jackson
        minify(DOCUMENT, ensure_ascii=True),  # DOKU's Python SDK: \uXXXX escapes
        json.dumps(DOCUMENT, indent=2, ensure_ascii=False).encode(),  # the raw bytes sent
    ],
    ids=["minified-utf8", "minified-ascii", "raw"],
)
def test_accepted_body_forms_are_not_called_mistakes(signed: bytes) -> None:
    # The gateway accepts each of these forms; here the path is the real mistake, and the
    # diagnosis must name only that, whichever accepted form the sender hashed.
    raw = json.dumps(DOCUMENT, indent=2, ensure_ascii=False).encode()
    request = received(b64(mac(signed, path=PATH)), raw=raw, prefix="/doku")
    diagnosis = diagnose(request)
    assert diagnosis.causes == ("path:no-prefix",)


# --- paths --------------------------------------------------------------------------------------


def test_a_path_signed_without_the_configured_prefix_is_named() -> None:
    diagnosis = diagnose(received(b64(mac(MINIFIED, path=PATH)), prefix="/doku"))
    assert diagnosis.causes == ("path:no-prefix",)
    assert "'/doku'" in diagnosis.message
    assert "http.path_prefix should be empty" in diagnosis.message


def test_a_prefix_the_gateway_was_not_told_about_is_named_from_x_forwarded_prefix() -> None:
    signature = b64(mac(MINIFIED, path="/doku" + PATH))
    diagnosis = diagnose(received(signature, forwarded_prefix="/doku/"))
    assert diagnosis.causes == ("path:forwarded-prefix",)
    assert "http.path_prefix = '/doku'" in diagnosis.message


def test_a_path_signed_without_its_query_string_is_named() -> None:
    diagnosis = diagnose(received(b64(mac(MINIFIED, path=PATH)), query="channel=BTN"))
    assert diagnosis.causes == ("path:no-query",)


def test_a_path_signed_with_its_query_string_the_gateway_verifies_too() -> None:
    # The gateway signs the query as SNAP does; a sender that also did passes, so no diagnosis
    # is needed, and the search must not invent a mistake for a wrong secret either.
    signature = b64(mac(MINIFIED, path=PATH + "?channel=BTN", secret="SK-other"))
    diagnosis = diagnose(received(signature, query="channel=BTN"))
    assert diagnosis.causes == ("secret",)


def test_a_full_url_in_the_string_to_sign_is_named() -> None:
    signature = b64(mac(MINIFIED, path=f"https://pay.example.com{PATH}"))
    diagnosis = diagnose(received(signature, host="pay.example.com"))
    assert diagnosis.causes == ("path:full-url",)


# --- token, hash, encoding ----------------------------------------------------------------------


def test_bearer_in_the_token_part_is_named() -> None:
    diagnosis = diagnose(received(b64(mac(MINIFIED, token=f"Bearer {TOKEN}"))))
    assert diagnosis.causes == ("token:bearer",)
    assert "'Bearer '" in diagnosis.message


def test_the_authorization_header_verbatim_in_the_token_part_is_named() -> None:
    # DOKU's samples write the scheme in lower case; a sender signing the header as it is.
    header = f"bearer {TOKEN}"
    signature = b64(mac(MINIFIED, token=header))
    diagnosis = diagnose(received(signature, authorization=header))
    assert diagnosis.causes == ("token:bearer",)
    assert "verbatim" in diagnosis.message


def test_a_string_to_sign_without_the_token_is_named() -> None:
    diagnosis = diagnose(received(b64(mac(MINIFIED, token=""))))
    assert diagnosis.causes == ("token:missing",)


def test_an_upper_case_body_hash_is_named() -> None:
    diagnosis = diagnose(received(b64(mac(MINIFIED, upper=True))))
    assert diagnosis.causes == ("hash:upper-case",)


def test_a_hex_signature_is_named() -> None:
    diagnosis = diagnose(received(mac(MINIFIED).hex()))
    assert diagnosis.causes == ("signature:hex",)
    assert "hex" in diagnosis.message


def test_a_base64url_signature_is_named() -> None:
    # Find a message whose MAC has a '+' or '/', so Base64url differs from Base64.
    for index in range(100):
        timestamp = f"2024-05-01T10:15:{index % 60:02d}+07:00"
        raw = mac(MINIFIED, timestamp=timestamp)
        if b"+" in base64.b64encode(raw) or b"/" in base64.b64encode(raw):
            break
    signature = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    diagnosis = diagnose(received(signature, timestamp=timestamp))
    assert diagnosis.causes == ("signature:base64url",)


def test_an_rsa_signature_on_a_transaction_call_is_named() -> None:
    signature = sign_asymmetric(generate_private_key(), "BRN-1", TIMESTAMP)
    diagnosis = diagnose(received(signature))
    assert diagnosis.causes == ("signature:format",)
    assert "RSA signature" in diagnosis.message


def test_an_hmac_sha256_is_named() -> None:
    raw = hmac.new(SECRET.encode(), b"anything", hashlib.sha256).digest()
    diagnosis = diagnose(received(b64(raw)))
    assert diagnosis.causes == ("signature:format",)
    assert "HMAC-SHA256" in diagnosis.message


def test_a_signature_of_no_known_shape_is_named() -> None:
    diagnosis = diagnose(received("not a signature"))
    assert diagnosis.causes == ("signature:format",)
    assert "88 characters" in diagnosis.message


# --- timestamps and the clock -------------------------------------------------------------------


def test_a_timestamp_signed_in_utc_while_the_header_says_wib_is_named() -> None:
    signature = b64(mac(MINIFIED, timestamp="2024-05-01T03:15:30Z"))
    diagnosis = diagnose(received(signature))
    assert diagnosis.causes == ("timestamp:zone",)
    assert "UTC" in diagnosis.message


def test_a_timestamp_read_twice_is_named() -> None:
    header = "2024-05-01T03:15:30.250Z"
    signature = b64(mac(MINIFIED, timestamp="2024-05-01T03:15:31.250Z"))
    diagnosis = diagnose(received(signature, timestamp=header))
    assert diagnosis.causes == ("timestamp:second-read",)
    assert "1 s later" in diagnosis.message


def test_the_clock_offset_is_part_of_every_signature_diagnosis() -> None:
    header = "2024-05-01T10:17:30+07:00"  # two minutes ahead, inside the window
    diagnosis = diagnose(
        received(b64(mac(MINIFIED, timestamp=header, upper=True)), timestamp=header)
    )
    assert diagnosis.clock_offset == 120.0
    assert "120 s ahead of the server clock" in diagnosis.message


def test_a_timestamp_hours_off_is_a_zone_error() -> None:
    # WIB wall-clock time sent with 'Z': seven hours in the future.
    diagnosis = diagnose_clock("2024-05-01T10:15:30Z", NOW, 300)
    assert diagnosis.causes == ("timestamp:zone",)
    assert diagnosis.clock_offset == 7 * 3600
    assert "time-zone error" in diagnosis.message


def test_a_timestamp_minutes_off_is_a_clock_error() -> None:
    diagnosis = diagnose_clock("2024-05-01T10:05:30+07:00", NOW, 300)
    assert diagnosis.causes == ("timestamp:clock",)
    assert "600 s behind" in diagnosis.message
    assert "NTP" in diagnosis.message


def test_a_malformed_timestamp_is_named() -> None:
    diagnosis = diagnose_clock("2024-05-01 10:15:30", NOW, 300)
    assert diagnosis.causes == ("timestamp:format",)
    assert diagnosis.clock_offset is None


# --- combinations and the fallback --------------------------------------------------------------


def test_two_mistakes_together_are_both_named() -> None:
    pretty = json.dumps(DOCUMENT, indent=2, ensure_ascii=False).encode()
    signature = b64(mac(pretty, path=PATH, token=f"Bearer {TOKEN}"))
    diagnosis = diagnose(received(signature, raw=pretty, prefix="/doku"))
    # The pretty body is what was sent, so its raw form is accepted: two mistakes, not three.
    assert diagnosis.causes == ("path:no-prefix", "token:bearer")


def test_another_secret_is_the_cause_when_no_variant_verifies() -> None:
    signature = b64(mac(MINIFIED, secret="SK-someone-else"))
    diagnosis = diagnose(received(signature, prefix="/doku", query="a=1", host="h.example"))
    assert diagnosis.causes == ("secret",)
    assert "client secret" in diagnosis.message


def test_a_mistake_in_the_encoding_counts_with_one_in_the_string_to_sign() -> None:
    # Hex, and the path signed without its query string: both are named.
    diagnosis = diagnose(received(mac(MINIFIED).hex(), query="x=1"))
    assert diagnosis.causes == ("path:no-query", "signature:hex")
