"""RSA key loading and generation, done once at start.

Keys arrive as PEM (PKCS#1 or PKCS#8 private, SPKI public). DOKU's dashboard hands out the public
key as bare base64 without the PEM armour as often as with it, so that form is accepted too.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_pem",
]


def load_private_key(pem: str | bytes, password: str | bytes | None = None) -> rsa.RSAPrivateKey:
    """Load an RSA private key from PEM; ``password`` for an encrypted PKCS#8 key."""
    data = pem.encode() if isinstance(pem, str) else pem
    secret = password.encode() if isinstance(password, str) else password
    try:
        key = serialization.load_pem_private_key(data, password=secret)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a usable PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the private key is not an RSA key")
    return key


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """Load an RSA public key from SPKI PEM, PKCS#1 PEM, or bare base64 DER."""
    data = pem.encode() if isinstance(pem, str) else pem
    data = data.strip()
    try:
        if data.startswith(b"-----"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(base64.b64decode(b"".join(data.split())))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError(f"not a usable public key ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the public key is not an RSA key")
    return key


def generate_private_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA key (2048 bits, the size DOKU documents)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM, the form DOKU's Python SDK loads."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: rsa.RSAPublicKey) -> bytes:
    """SPKI PEM (``BEGIN PUBLIC KEY``), the form DOKU exchanges."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
