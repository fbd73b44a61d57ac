from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.snap.canonical import minify, sha256_hex
from gateway.snap.signature import (
    SignatureMatch,
    SymmetricSigner,
    asymmetric_string_to_sign,
    sign_asymmetric,
    sign_symmetric,
    symmetric_string_to_sign,
    verify_asymmetric,
    verify_asymmetric_any,
)
from gateway.snap.timestamps import parse_timestamp

from ..support import Keys

NAME = "Budi Śantoso / Jl. Merdeka"


def _sym(vectors: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = vectors["symmetric_signature"]
    return section


def _signer(vectors: dict[str, Any]) -> SymmetricSigner:
    return SymmetricSigner.from_secret(_sym(vectors)["client_secret"])


def _verify(
    vectors: dict[str, Any],
    raw: bytes,
    signature: str,
    *,
    path: str | None = None,
    signer: SymmetricSigner | None = None,
    parse: bool = True,
) -> str | None:
    """Verify ``raw`` as the vector's inquiry call, with the vector's method, token and time."""
    sym = _sym(vectors)
    document = json.loads(raw) if parse and raw else None
    return (signer or _signer(vectors)).verify(
        sym["http_method"],
        sym["endpoint"] if path is None else path,
        sym["access_token"],
        raw,
        document,
        sym["x_timestamp"],
        signature,
    )


def _sign_over(vectors: dict[str, Any], signed: bytes, path: str | None = None) -> str:
    """X-SIGNATURE a sender would compute over the body form ``signed``."""
    sym = _sym(vectors)
    return sign_symmetric(
        sym["client_secret"],
        sym["http_method"],
        sym["endpoint"] if path is None else path,
        sym["access_token"],
        signed,
        sym["x_timestamp"],
    )


# Asymmetric (token requests) ------------------------------------------------------------------


def test_asymmetric_string_to_sign(vectors: dict[str, Any]) -> None:
    asym = vectors["asymmetric_signature"]
    assert (
        asymmetric_string_to_sign(asym["client_id"], asym["x_timestamp"])
        == (asym["string_to_sign"])
    )


def test_sign_asymmetric_reproduces_the_vector(
    vectors: dict[str, Any], vector_private_key: rsa.RSAPrivateKey
) -> None:
    asym = vectors["asymmetric_signature"]
    signature = sign_asymmetric(vector_private_key, asym["client_id"], asym["x_timestamp"])
    assert signature == asym["x_signature"]
    assert "\n" not in signature


def test_verify_asymmetric_accepts_the_vector(
    vectors: dict[str, Any], vector_public_key: rsa.RSAPublicKey
) -> None:
    asym = vectors["asymmetric_signature"]
    result = verify_asymmetric(
        vector_public_key, asym["client_id"], asym["x_timestamp"], asym["x_signature"]
    )
    assert result is asym["verifies_with_compare_signatures"] is True


def test_verify_asymmetric_refuses_the_vector_one_second_later(
    vectors: dict[str, Any], vector_public_key: rsa.RSAPublicKey
) -> None:
    asym = vectors["asymmetric_signature"]
    shifted = (parse_timestamp(asym["x_timestamp"]) + timedelta(seconds=1)).isoformat()
    assert shifted == "2024-05-01T10:15:31+07:00"
    result = verify_asymmetric(vector_public_key, asym["client_id"], shifted, asym["x_signature"])
    assert result is asym["verifies_if_timestamp_changed_by_1s"] is False


@pytest.mark.parametrize(
    "change",
    ["other_key", "other_client", "same_instant_other_format", "newlines", "not_base64", "empty"],
)
def test_verify_asymmetric_refuses(
    vectors: dict[str, Any], vector_public_key: rsa.RSAPublicKey, keys: Keys, change: str
) -> None:
    asym = vectors["asymmetric_signature"]
    key, client_id, timestamp, signature = (
        vector_public_key,
        asym["client_id"],
        asym["x_timestamp"],
        asym["x_signature"],
    )
    if change == "other_key":
        key = keys.doku.public_key()
    elif change == "other_client":
        client_id = "BRN-0001-1700000000002"
    elif change == "same_instant_other_format":
        # The header is signed verbatim: the same instant written in UTC is another string.
        timestamp = "2024-05-01T03:15:30Z"
    elif change == "newlines":
        signature = base64.encodebytes(base64.b64decode(signature)).decode("ascii")
    elif change == "not_base64":
        signature = "not base64!"
    else:
        signature = ""
    assert verify_asymmetric(key, client_id, timestamp, signature) is False


def test_asymmetric_round_trip_with_a_fresh_key(keys: Keys) -> None:
    timestamp = "2024-05-01T03:15:30Z"
    signature = sign_asymmetric(keys.doku, keys.client_id, timestamp)
    assert verify_asymmetric(keys.doku.public_key(), keys.client_id, timestamp, signature)
    assert not verify_asymmetric(keys.merchant.public_key(), keys.client_id, timestamp, signature)


# Symmetric (transaction calls) ----------------------------------------------------------------


def test_symmetric_string_to_sign(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    assert (
        symmetric_string_to_sign(
            sym["http_method"],
            sym["endpoint"],
            sym["access_token"],
            sym["sha256_hex_lower_of_minified"],
            sym["x_timestamp"],
        )
        == sym["string_to_sign"]
    )


def test_sign_symmetric_reproduces_the_vector(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    body = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    signature = _sign_over(vectors, body)
    assert signature == sym["x_signature"]
    assert len(signature) == 88 and signature.endswith("==")


def test_sign_symmetric_matches_an_independent_recomputation(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    mac = hmac.new(
        sym["client_secret"].encode("utf-8"),
        sym["string_to_sign"].encode("utf-8"),
        hashlib.sha512,
    ).digest()
    independent = base64.b64encode(mac).decode("ascii")
    assert sym["independent_recomputation_matches"] is True
    assert independent == sym["x_signature"]
    body = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    assert _sign_over(vectors, body) == independent


def test_full_url_variant_reproduces_its_vector(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    variant = sym["same_inputs_but_endpoint_is_full_url"]
    body = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    signature = _sign_over(vectors, body, path=variant["endpoint"])
    assert signature == variant["x_signature"]
    assert signature != sym["x_signature"]


def test_signer_sign_and_sign_document_reproduce_the_vector(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    signer = _signer(vectors)
    expected_body = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    assert signer.secret == sym["client_secret"].encode("utf-8")
    args = (sym["http_method"], sym["endpoint"], sym["access_token"])
    assert signer.sign(*args, expected_body, sym["x_timestamp"]) == sym["x_signature"]
    body, signature = signer.sign_document(*args, sym["request_body_object"], sym["x_timestamp"])
    assert body == expected_body
    assert signature == sym["x_signature"]


def test_empty_body_signs_the_hash_of_nothing(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    message = symmetric_string_to_sign(
        "GET", "/health", sym["access_token"], sha256_hex(b""), sym["x_timestamp"]
    )
    assert hashlib.sha256(b"").hexdigest() in message
    signature = sign_symmetric(
        sym["client_secret"], "GET", "/health", sym["access_token"], b"", sym["x_timestamp"]
    )
    signer = _signer(vectors)
    assert (
        signer.verify(
            "GET", "/health", sym["access_token"], b"", None, sym["x_timestamp"], signature
        )
        == "empty"
    )


# SymmetricSigner.verify: which body forms pass --------------------------------------------------


def test_verify_accepts_the_vector_as_sent(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    assert _verify(vectors, raw, sym["x_signature"]) == "minified-utf8"


def test_verify_accepts_a_pretty_printed_body_signed_minified(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    raw = json.dumps(sym["request_body_object"], indent=2).encode("utf-8")
    assert _verify(vectors, raw, sym["x_signature"]) == "minified-utf8"


def test_verify_accepts_a_non_ascii_body_signed_utf8_style(vectors: dict[str, Any]) -> None:
    document = {**_sym(vectors)["request_body_object"], "virtualAccountName": NAME}
    signature = _sign_over(vectors, minify(document))
    raw = json.dumps(document, indent=4, ensure_ascii=False).encode("utf-8")
    assert _verify(vectors, raw, signature) == "minified-utf8"


def test_verify_accepts_a_non_ascii_body_signed_python_sdk_style(
    vectors: dict[str, Any],
) -> None:
    pitfalls = vectors["minification_pitfalls"]["non_ascii_body"]
    signed = pitfalls["python_sdk_minified"].encode("utf-8")
    signature = _sign_over(vectors, signed)
    # Whatever the body looks like on the wire, the escaped minification is found.
    document = json.loads(signed)
    for raw in (signed, json.dumps(document, ensure_ascii=False).encode("utf-8")):
        assert _verify(vectors, raw, signature) == "minified-ascii"


def test_verify_accepts_raw_bytes_signed_as_sent(vectors: dict[str, Any]) -> None:
    # PHP's json_encode without JSON_UNESCAPED_SLASHES writes "\/": re-minifying in Python
    # gives "/", so only the raw bytes carry the hash the sender computed.
    raw = b'{"partnerServiceId":"   88899","trxDateInit":"2024\\/05\\/01"}'
    signature = _sign_over(vectors, raw)
    assert _verify(vectors, raw, signature) == "raw"


def test_verify_accepts_a_non_json_body_by_its_raw_bytes(vectors: dict[str, Any]) -> None:
    raw = b"not json at all"
    signature = _sign_over(vectors, raw)
    assert _verify(vectors, raw, signature, parse=False) == "raw"


# SymmetricSigner.verify: what is refused ------------------------------------------------------


def test_verify_refuses_a_wrong_secret(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    wrong = SymmetricSigner.from_secret(sym["client_secret"] + "x")
    assert _verify(vectors, raw, sym["x_signature"], signer=wrong) is None


def test_verify_refuses_a_changed_path(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    assert _verify(vectors, raw, sym["x_signature"], path="/v1.0/transfer-va/inquiry") is None
    assert _verify(vectors, raw, sym["x_signature"], path=sym["endpoint"] + "?x=1") is None


def test_verify_refuses_a_signature_over_the_full_url(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    full_url = sym["same_inputs_but_endpoint_is_full_url"]
    assert _verify(vectors, raw, full_url["x_signature"]) is None
    # ...and checks it only against the URL it was made over.
    assert _verify(vectors, raw, full_url["x_signature"], path=full_url["endpoint"]) == (
        "minified-utf8"
    )


def test_verify_refuses_a_body_whose_padding_was_trimmed(vectors: dict[str, Any]) -> None:
    document = dict(_sym(vectors)["request_body_object"])
    trimmed = {**document, "partnerServiceId": document["partnerServiceId"].strip()}
    assert trimmed["partnerServiceId"] == "88899"
    signature = _sign_over(vectors, minify(trimmed))
    raw = minify(document)
    assert _verify(vectors, raw, signature) is None


def test_verify_refuses_a_signature_over_sorted_keys(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    resorted = json.loads(json.dumps(sym["request_body_object"], sort_keys=True))
    signed = minify(resorted)
    assert sha256_hex(signed) == vectors["minification_pitfalls"]["reordered_keys_minified_sha256"]
    signature = _sign_over(vectors, signed)
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    assert _verify(vectors, raw, signature) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s.lower(),
        lambda s: s[:-3] + "A==",
        lambda s: s.rstrip("="),
        lambda s: "Ñ" + s[1:],
        lambda s: "",
    ],
    ids=["lower-case", "last-char", "no-padding", "non-ascii", "empty"],
)
def test_verify_refuses_a_tampered_signature(
    vectors: dict[str, Any], tamper: Callable[[str], str]
) -> None:
    sym = _sym(vectors)
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    tampered = tamper(sym["x_signature"])
    assert tampered != sym["x_signature"]
    assert _verify(vectors, raw, tampered) is None


def test_verify_refuses_a_changed_body_value(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    document = {**sym["request_body_object"], "inquiryRequestId": "abcdef-123456-abcdeg"}
    assert _verify(vectors, minify(document), sym["x_signature"]) is None


def test_verify_refuses_a_token_with_the_bearer_prefix(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    result = _signer(vectors).verify(
        sym["http_method"],
        sym["endpoint"],
        "Bearer " + sym["access_token"],
        raw,
        json.loads(raw),
        sym["x_timestamp"],
        sym["x_signature"],
    )
    assert result is None


# Rotation window: a second secret verifies too, and the match says which one.


def _match(vectors: dict[str, Any], signer: SymmetricSigner, signature: str) -> Any:
    sym = _sym(vectors)
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    return signer.match(
        sym["http_method"],
        sym["endpoint"],
        sym["access_token"],
        raw,
        json.loads(raw),
        sym["x_timestamp"],
        signature,
    )


def test_the_next_secret_verifies_and_is_named(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    old = SymmetricSigner.from_secret("SK-old-secret-000000000000", sym["client_secret"])
    assert _match(vectors, old, sym["x_signature"]) == SignatureMatch("minified-utf8", "next")
    new = SymmetricSigner.from_secret(sym["client_secret"], "SK-next-secret-00000000000")
    assert _match(vectors, new, sym["x_signature"]) == SignatureMatch("minified-utf8", "current")
    assert (
        _verify(
            vectors, sym["minified_body_as_sdk_builds_it"].encode(), sym["x_signature"], signer=old
        )
        == "minified-utf8"
    )


def test_neither_secret_is_no_match(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    signer = SymmetricSigner.from_secret("SK-a-000000000000000000000", "SK-b-00000000000000000000")
    assert _match(vectors, signer, sym["x_signature"]) is None


def test_signing_uses_the_current_secret_only(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    signer = SymmetricSigner.from_secret(sym["client_secret"], "SK-next-secret-00000000000")
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    signature = signer.sign(
        sym["http_method"], sym["endpoint"], sym["access_token"], raw, sym["x_timestamp"]
    )
    assert signature == sym["x_signature"]


def test_a_next_secret_equal_to_the_current_one_is_not_a_second_key(
    vectors: dict[str, Any],
) -> None:
    sym = _sym(vectors)
    signer = SymmetricSigner.from_secret(sym["client_secret"], sym["client_secret"])
    assert _match(vectors, signer, sym["x_signature"]).key == "current"
    assert len(signer._keyed) == 1


def test_verify_asymmetric_any_names_the_key_that_verified(keys: Keys) -> None:
    timestamp = "2024-05-01T10:15:30+07:00"
    signature = sign_asymmetric(keys.merchant, keys.client_id, timestamp)
    ring = [("current", keys.doku.public_key()), ("next", keys.merchant.public_key())]
    assert verify_asymmetric_any(ring, keys.client_id, timestamp, signature) == "next"
    assert verify_asymmetric_any(ring[:1], keys.client_id, timestamp, signature) is None
    assert verify_asymmetric_any(ring, keys.client_id, timestamp, "not base64!") is None


# The hot path: raw bytes first, with the digest the caller already has ---------------------------


def _match_with_digest(
    vectors: dict[str, Any], raw: bytes, signature: str, signer: SymmetricSigner | None = None
) -> SignatureMatch | None:
    sym = _sym(vectors)
    return (signer or _signer(vectors)).match(
        sym["http_method"],
        sym["endpoint"],
        sym["access_token"],
        raw,
        json.loads(raw),
        sym["x_timestamp"],
        signature,
        hashlib.sha256(raw).hexdigest(),
    )


def test_raw_first_verifies_a_minified_body_by_its_own_bytes(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    assert _match_with_digest(vectors, raw, sym["x_signature"]) == SignatureMatch("raw", "current")


def test_raw_first_still_finds_every_canonical_form(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    pretty = json.dumps(sym["request_body_object"], indent=2).encode("utf-8")
    assert _match_with_digest(vectors, pretty, sym["x_signature"]) == SignatureMatch(
        "minified-utf8", "current"
    )
    document = {**sym["request_body_object"], "virtualAccountName": NAME}
    escaped = _sign_over(vectors, minify(document, ensure_ascii=True))
    raw = json.dumps(document, indent=1, ensure_ascii=False).encode("utf-8")
    assert _match_with_digest(vectors, raw, escaped) == SignatureMatch("minified-ascii", "current")


def test_raw_first_refuses_what_the_canonical_order_refuses(vectors: dict[str, Any]) -> None:
    sym = _sym(vectors)
    raw = sym["minified_body_as_sdk_builds_it"].encode("utf-8")
    forged = _sign_over(vectors, raw + b" ")
    assert _match_with_digest(vectors, raw, forged) is None
    assert _match_with_digest(vectors, raw, "not base64!") is None
