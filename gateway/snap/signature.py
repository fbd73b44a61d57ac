"""SNAP signatures (spec §5).

* Asymmetric, on access-token calls: SHA256withRSA over ``clientId|X-TIMESTAMP``, base64.
* Symmetric, on transaction calls: HMAC-SHA512 with the client secret over
  ``METHOD:path:token:sha256hex(minified body):X-TIMESTAMP``, base64.

Both sides use the header strings verbatim; nothing here re-formats a timestamp or trims padding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .canonical import body_candidates, minify, sha256_hex

__all__ = [
    "SignatureMatch",
    "SymmetricSigner",
    "asymmetric_string_to_sign",
    "sign_asymmetric",
    "sign_symmetric",
    "symmetric_string_to_sign",
    "verify_asymmetric",
    "verify_asymmetric_any",
]


def asymmetric_string_to_sign(client_id: str, timestamp: str) -> str:
    return f"{client_id}|{timestamp}"


def sign_asymmetric(private_key: rsa.RSAPrivateKey, client_id: str, timestamp: str) -> str:
    """X-SIGNATURE of a token request: base64(SHA256withRSA(``clientId|timestamp``))."""
    message = asymmetric_string_to_sign(client_id, timestamp).encode("utf-8")
    raw = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def verify_asymmetric(
    public_key: rsa.RSAPublicKey, client_id: str, timestamp: str, signature: str
) -> bool:
    """True when ``signature`` is a valid token-request signature by ``public_key``'s owner."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    message = asymmetric_string_to_sign(client_id, timestamp).encode("utf-8")
    try:
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def verify_asymmetric_any(
    keys: Sequence[tuple[str, rsa.RSAPublicKey]], client_id: str, timestamp: str, signature: str
) -> str | None:
    """The label of the first of ``keys`` whose owner made ``signature``, else ``None``."""
    for label, key in keys:
        if verify_asymmetric(key, client_id, timestamp, signature):
            return label
    return None


def symmetric_string_to_sign(
    method: str, path: str, token: str, body_sha256_hex: str, timestamp: str
) -> str:
    return f"{method}:{path}:{token}:{body_sha256_hex}:{timestamp}"


def sign_symmetric(
    secret: str, method: str, path: str, token: str, body: bytes, timestamp: str
) -> str:
    """X-SIGNATURE of a transaction call over ``body`` exactly as given (already minified)."""
    message = symmetric_string_to_sign(method, path, token, sha256_hex(body), timestamp)
    mac = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha512).digest()
    return base64.b64encode(mac).decode("ascii")


class SignatureMatch(NamedTuple):
    """Which body form verified (``minified-utf8``, ``minified-ascii``, ``raw``, ``empty``) and
    with which secret (``current``, or ``next`` during a rotation)."""

    form: str
    key: str


@dataclass(frozen=True, slots=True)
class SymmetricSigner:
    """Verifies inbound symmetric signatures with the client secret, built once at start.

    During a rotation window ``next_secret`` verifies too; signing always uses ``secret``.
    """

    secret: bytes = field(repr=False)
    next_secret: bytes | None = field(default=None, repr=False)
    # The HMAC key schedule (two SHA-512 blocks of padded key) is done once; copies reuse it.
    _keyed: tuple[tuple[str, hmac.HMAC], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keyed = [("current", hmac.new(self.secret, digestmod=hashlib.sha512))]
        if self.next_secret is not None and self.next_secret != self.secret:
            keyed.append(("next", hmac.new(self.next_secret, digestmod=hashlib.sha512)))
        object.__setattr__(self, "_keyed", tuple(keyed))

    @classmethod
    def from_secret(cls, secret: str, next_secret: str | None = None) -> SymmetricSigner:
        secret_next = None if next_secret is None else next_secret.encode("utf-8")
        return cls(secret.encode("utf-8"), secret_next)

    def sign(self, method: str, path: str, token: str, body: bytes, timestamp: str) -> str:
        message = symmetric_string_to_sign(method, path, token, sha256_hex(body), timestamp)
        mac = hmac.new(self.secret, message.encode("utf-8"), hashlib.sha512).digest()
        return base64.b64encode(mac).decode("ascii")

    def sign_document(
        self, method: str, path: str, token: str, document: Any, timestamp: str
    ) -> tuple[bytes, str]:
        """Minify ``document`` and sign it: returns ``(bytes to send, X-SIGNATURE)``."""
        body = minify(document)
        return body, self.sign(method, path, token, body, timestamp)

    def verify(
        self,
        method: str,
        path: str,
        token: str,
        raw: bytes,
        document: Any,
        timestamp: str,
        signature: str,
    ) -> str | None:
        """Return the name of the body form that verified, or ``None`` when none did."""
        found = self.match(method, path, token, raw, document, timestamp, signature)
        return None if found is None else found.form

    def match(
        self,
        method: str,
        path: str,
        token: str,
        raw: bytes,
        document: Any,
        timestamp: str,
        signature: str,
        raw_digest: str | None = None,
    ) -> SignatureMatch | None:
        """The body form and secret that verified, or ``None`` when none did.

        Every candidate of :func:`body_candidates` is tried with each secret (the current one
        first) with a constant-time compare. ``raw_digest`` (the hex SHA-256 of ``raw``, which
        the caller computed anyway) tries the bytes as received first: DOKU sends the minified
        body it signed, so the common case costs one hash and no re-encoding, and is reported
        as ``raw``. The same forms verify either way; only their order differs.
        """
        try:
            expected = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(expected) != 64:  # an HMAC-SHA512 is 64 bytes; anything else cannot match
            return None
        prefix = f"{method}:{path}:{token}:".encode()
        suffix = f":{timestamp}".encode()
        if raw_digest is not None and raw:
            key = self._check(prefix + raw_digest.encode("ascii") + suffix, expected)
            if key is not None:
                return SignatureMatch("raw", key)
        for name, body in body_candidates(raw, document):
            if raw_digest is not None and body == raw:
                continue  # tried first
            key = self._check(
                prefix + hashlib.sha256(body).hexdigest().encode("ascii") + suffix, expected
            )
            if key is not None:
                return SignatureMatch(name, key)
        return None

    def _check(self, message: bytes, expected: bytes) -> str | None:
        """Which secret's HMAC of ``message`` is ``expected`` (constant-time), if any."""
        for key, schedule in self._keyed:
            mac = schedule.copy()
            mac.update(message)
            if hmac.compare_digest(mac.digest(), expected):
                return key
        return None
