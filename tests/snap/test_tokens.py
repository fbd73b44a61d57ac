from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.snap.keys import public_key_pem
from gateway.snap.tokens import TokenIssuer, TokenVerifier, encode_jwt

from ..support import Keys

T = 1_714_533_330  # 2024-05-01T10:15:30+07:00, the vectors' frozen clock
FAR_FUTURE = 4_000_000_000  # 2096: later than the wall clock for the life of this suite


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(document: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(document, separators=(",", ":")).encode("utf-8"))


def _decode(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _rs256(header: Mapping[str, Any], claims: Mapping[str, Any], key: rsa.RSAPrivateKey) -> str:
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def _claims(keys: Keys, now: int = T, **extra: Any) -> dict[str, Any]:
    return {"iss": "doku-gateway", "iat": now, "exp": now + 900, "clientId": keys.client_id} | extra


def _verifier(keys: Keys, *extra: rsa.RSAPublicKey) -> TokenVerifier:
    return TokenVerifier((keys.merchant.public_key(), *extra), keys.client_id)


# The merchant-issued JWT vector (spec §15.5) --------------------------------------------------


def test_encode_jwt_reproduces_the_vector(
    vectors: dict[str, Any], vector_private_key: rsa.RSAPrivateKey
) -> None:
    section = vectors["merchant_issued_jwt"]
    assert encode_jwt(section["payload"], vector_private_key) == section["jwt"]
    assert section["token_response_body_sdk_builds"]["accessToken"] == section["jwt"]


def test_vector_jwt_decodes_to_the_vector_header_and_payload(vectors: dict[str, Any]) -> None:
    section = vectors["merchant_issued_jwt"]
    header, payload, _ = section["jwt"].split(".")
    assert _decode(header) == section["header"]
    # Claims keep their order: the payload segment is the compact JSON of the vector payload.
    assert payload == _segment(section["payload"])


def test_vector_jwt_verifies_at_its_issue_time(
    vectors: dict[str, Any], vector_public_key: rsa.RSAPublicKey
) -> None:
    section = vectors["merchant_issued_jwt"]
    client_id = section["payload"]["clientId"]
    verifier = TokenVerifier((vector_public_key,), client_id)
    assert verifier.verify(section["jwt"], now=T) is True


def test_vector_jwt_is_refused_now_that_it_expired(
    vectors: dict[str, Any], vector_public_key: rsa.RSAPublicKey
) -> None:
    section = vectors["merchant_issued_jwt"]
    verifier = TokenVerifier((vector_public_key,))
    assert verifier.verify(section["jwt"]) is section["validate_token_b2b_now(expired long ago)"]


def test_vector_jwt_with_the_bearer_prefix_is_refused(
    vectors: dict[str, Any], vector_public_key: rsa.RSAPublicKey
) -> None:
    section = vectors["merchant_issued_jwt"]
    verifier = TokenVerifier((vector_public_key,))
    expected = section["validate_token_b2b_with_Bearer_prefix"]
    assert verifier.verify("Bearer " + section["jwt"], now=T) is expected is False


def test_doku_doc_sample_token_shape_verifies_with_the_doku_key(
    vectors: dict[str, Any], keys: Keys
) -> None:
    sample = vectors["doku_doc_sample_authorization_decoded"]
    token = _rs256(sample["header"], sample["payload"], keys.doku)
    header, payload, _ = token.split(".")
    assert _decode(header) == {"alg": "RS256"}
    assert _decode(payload) == sample["payload"]
    now = sample["payload"]["exp"] - 100
    client_id = sample["payload"]["clientId"]
    merchant_only = TokenVerifier((keys.merchant.public_key(),), client_id)
    assert merchant_only.verify(token, now=now) is False
    both = TokenVerifier((keys.merchant.public_key(), keys.doku.public_key()), client_id)
    assert both.verify(token, now=now) is True


# TokenIssuer ----------------------------------------------------------------------------------


def test_issuer_claims_and_lifetime(vectors: dict[str, Any], keys: Keys) -> None:
    issued = TokenIssuer(keys.merchant, keys.client_id).issue(now=T + 0.9)
    assert (
        issued.expires_in
        == vectors["merchant_issued_jwt"]["token_response_body_sdk_builds"]["expiresIn"]
    )
    assert issued.expires_at == T + 900
    header, payload, _ = issued.access_token.split(".")
    assert _decode(header) == {"alg": "RS256", "typ": "JWT"}
    claims = _decode(payload)
    assert list(claims) == ["iss", "iat", "exp", "clientId", "jti"]
    assert claims["iss"] == "doku-gateway"
    assert claims["iat"] == T
    assert claims["exp"] == T + 900
    assert claims["clientId"] == keys.client_id
    assert re.fullmatch(r"[0-9a-f]{24}", claims["jti"])


def test_issuer_tokens_are_unique(keys: Keys) -> None:
    issuer = TokenIssuer(keys.merchant, keys.client_id)
    first, second = issuer.issue(now=T), issuer.issue(now=T)
    assert first.access_token != second.access_token
    assert (
        _decode(first.access_token.split(".")[1])["jti"]
        != (_decode(second.access_token.split(".")[1])["jti"])
    )


def test_issuer_honours_a_custom_issuer_and_lifetime(keys: Keys) -> None:
    issued = TokenIssuer(keys.merchant, keys.client_id, issuer="shop", lifetime=60).issue(now=T)
    claims = _decode(issued.access_token.split(".")[1])
    assert (claims["iss"], claims["exp"], issued.expires_in) == ("shop", T + 60, 60)


# Round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("now", [T, FAR_FUTURE], ids=["past", "future"])
def test_round_trip(keys: Keys, now: int) -> None:
    # "future" pins that only ``now`` decides validity, never the wall clock (an app built with
    # its own clock must accept the tokens it issued).
    issued = TokenIssuer(keys.merchant, keys.client_id).issue(now=now)
    assert _verifier(keys).verify(issued.access_token, now=now) is True


def test_round_trip_without_a_configured_client_id(keys: Keys) -> None:
    issued = TokenIssuer(keys.merchant, "someone-else").issue(now=T)
    assert TokenVerifier((keys.merchant.public_key(),)).verify(issued.access_token, now=T)


def test_expiry_edges(keys: Keys) -> None:
    issued = TokenIssuer(keys.merchant, keys.client_id).issue(now=T)
    last = issued.expires_at + 60.0  # default leeway
    assert _verifier(keys).verify(issued.access_token, now=last) is True
    assert _verifier(keys).verify(issued.access_token, now=last + 0.001) is False
    assert _verifier(keys).verify(issued.access_token, now=issued.expires_at + 3600) is False


def test_not_yet_valid_tokens_are_refused(keys: Keys) -> None:
    early = T - 61  # more than the leeway before ``iat``
    issued = TokenIssuer(keys.merchant, keys.client_id).issue(now=T)
    assert _verifier(keys).verify(issued.access_token, now=early) is False
    assert _verifier(keys).verify(issued.access_token, now=T - 60) is True
    nbf = encode_jwt(_claims(keys, nbf=T + 300), keys.merchant)
    assert _verifier(keys).verify(nbf, now=T) is False
    assert _verifier(keys).verify(nbf, now=T + 300) is True


# What is refused ------------------------------------------------------------------------------


def test_refuses_alg_none(keys: Keys) -> None:
    token = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(_claims(keys))}."
    assert _verifier(keys).verify(token, now=T) is False


def test_refuses_hs256_keyed_with_the_public_key_pem(keys: Keys) -> None:
    secret = public_key_pem(keys.merchant.public_key())
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment(_claims(keys))}"
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64url(mac)}"
    assert _verifier(keys).verify(token, now=T) is False


def test_refuses_a_token_signed_by_another_rsa_key(keys: Keys) -> None:
    token = encode_jwt(_claims(keys), keys.doku)
    assert _verifier(keys).verify(token, now=T) is False


def test_refuses_a_forged_payload(keys: Keys) -> None:
    header, _, signature = encode_jwt(_claims(keys), keys.merchant).split(".")
    forged = f"{header}.{_segment(_claims(keys, exp=T + 86_400))}.{signature}"
    assert _verifier(keys).verify(forged, now=T) is False


@pytest.mark.parametrize(
    "token", ["", "garbage", "a.b.c", "...", "eyJhbGciOiJSUzI1NiJ9..", "Bearer x.y.z"]
)
def test_refuses_garbage(keys: Keys, token: str) -> None:
    assert _verifier(keys).verify(token, now=T) is False


def test_refuses_another_client_id(keys: Keys) -> None:
    issued = TokenIssuer(keys.merchant, "BRN-0001-1700000000002").issue(now=T)
    assert _verifier(keys).verify(issued.access_token, now=T) is False


def test_refuses_a_token_without_client_id(keys: Keys) -> None:
    # Spec §6.3: clientId must equal the configured client id; a token without one is not ours.
    claims = {"exp": T + 900, "issuer": "MERCHANT-ISSUER"}
    assert _verifier(keys).verify(encode_jwt(claims, keys.merchant), now=T) is False


@pytest.mark.parametrize(
    "claims",
    [
        {"clientId": "BRN-0001-1700000000001"},
        {"exp": str(T + 900), "clientId": "BRN-0001-1700000000001"},
        {"exp": T + 900, "iat": "yesterday"},
    ],
    ids=["no-exp", "string-exp", "string-iat"],
)
def test_refuses_bad_time_claims(keys: Keys, claims: dict[str, Any]) -> None:
    assert _verifier(keys).verify(encode_jwt(claims, keys.merchant), now=T) is False


# The cache ------------------------------------------------------------------------------------


def test_a_verified_token_is_remembered_until_exp_plus_leeway(keys: Keys) -> None:
    issuer = TokenIssuer(keys.merchant, keys.client_id)
    issued = issuer.issue(now=T)
    verifier = _verifier(keys)
    assert verifier.verify(issued.access_token, now=T) is True
    verifier.keys = (keys.doku.public_key(),)
    # A token not seen before is checked against the unrelated key and refused...
    assert verifier.verify(issuer.issue(now=T).access_token, now=T) is False
    # ...while the remembered one passes without another RSA check, up to exp + leeway.
    assert verifier.verify(issued.access_token, now=T + 10) is True
    last = issued.expires_at + verifier.leeway
    assert verifier.verify(issued.access_token, now=last) is True
    assert verifier.verify(issued.access_token, now=last + 1) is False
    # Refused once, it is forgotten: at a valid time the (unrelated) keys decide again.
    assert verifier.verify(issued.access_token, now=T) is False


def test_the_cache_is_bounded_and_drops_the_oldest(keys: Keys) -> None:
    issuer = TokenIssuer(keys.merchant, keys.client_id)
    first, second = issuer.issue(now=T), issuer.issue(now=T)
    verifier = TokenVerifier((keys.merchant.public_key(),), keys.client_id, max_cached=1)
    assert verifier.verify(first.access_token, now=T)
    assert verifier.verify(second.access_token, now=T)
    verifier.keys = (keys.doku.public_key(),)
    assert verifier.verify(second.access_token, now=T) is True
    assert verifier.verify(first.access_token, now=T) is False


def test_a_refused_token_is_not_remembered(keys: Keys) -> None:
    token = encode_jwt(_claims(keys), keys.doku)
    verifier = _verifier(keys)
    assert verifier.verify(token, now=T) is False
    verifier.keys = (keys.doku.public_key(),)
    assert verifier.verify(token, now=T) is True


# DOKU-issued tokens (spec §19 Q3) -------------------------------------------------------------


def test_doku_signed_tokens_need_the_doku_key(keys: Keys) -> None:
    token = encode_jwt({"exp": T + 900, "iss": "DOKU", "clientId": keys.client_id}, keys.doku)
    assert _verifier(keys).verify(token, now=T) is False
    assert _verifier(keys, keys.doku.public_key()).verify(token, now=T) is True
    merchant = TokenIssuer(keys.merchant, keys.client_id).issue(now=T).access_token
    assert _verifier(keys, keys.doku.public_key()).verify(merchant, now=T) is True
