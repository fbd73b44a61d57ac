from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.snap.keys import (
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
)

from ..support import Keys


def _same_key(private: rsa.RSAPrivateKey, public: rsa.RSAPublicKey) -> bool:
    return private.public_key().public_numbers() == public.public_numbers()


def _pem_body(pem: bytes) -> bytes:
    """The base64 lines between the armour, as DOKU's dashboard sometimes hands them out."""
    return b"\n".join(line for line in pem.splitlines() if not line.startswith(b"-----"))


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# Private keys ---------------------------------------------------------------------------------


def test_vector_keys_are_a_pair(vectors: dict[str, Any]) -> None:
    pems = vectors["keys"]
    private = load_private_key(pems["private_key_pem_pkcs8"])
    public = load_public_key(pems["public_key_pem_spki"])
    assert private.key_size == 2048
    assert _same_key(private, public)


def test_vector_keys_serialise_back_byte_for_byte(vectors: dict[str, Any]) -> None:
    pems = vectors["keys"]
    private = load_private_key(pems["private_key_pem_pkcs8"].encode("ascii"))
    assert private_key_pem(private) == pems["private_key_pem_pkcs8"].encode("ascii")
    assert public_key_pem(private.public_key()) == pems["public_key_pem_spki"].encode("ascii")


def test_private_key_round_trip(keys: Keys) -> None:
    pem = private_key_pem(keys.merchant)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert load_private_key(pem).private_numbers() == keys.merchant.private_numbers()
    assert load_private_key(pem.decode("ascii")).private_numbers() == (
        keys.merchant.private_numbers()
    )


def test_loads_pkcs1_private_keys(keys: Keys) -> None:
    pem = keys.merchant.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert load_private_key(pem).private_numbers() == keys.merchant.private_numbers()


@pytest.mark.parametrize("password", ["s3cret", b"s3cret"])
def test_loads_encrypted_pkcs8_with_its_password(keys: Keys, password: str | bytes) -> None:
    pem = keys.merchant.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert load_private_key(pem, password).private_numbers() == keys.merchant.private_numbers()


@pytest.mark.parametrize(
    ("encrypted", "password"),
    [(True, "wrong"), (True, None), (False, "unexpected")],
    ids=["wrong-password", "missing-password", "password-for-plain-key"],
)
def test_refuses_a_password_mismatch(keys: Keys, encrypted: bool, password: str | None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(b"s3cret")
        if encrypted
        else serialization.NoEncryption()
    )
    pem = keys.merchant.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    with pytest.raises(ValueError, match="not a usable PEM private key"):
        load_private_key(pem, password)


@pytest.mark.parametrize("pem", ["", "garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n"])
def test_refuses_garbage_private_keys(pem: str) -> None:
    with pytest.raises(ValueError, match="not a usable PEM private key"):
        load_private_key(pem)


def test_refuses_a_public_key_as_private(keys: Keys) -> None:
    with pytest.raises(ValueError, match="not a usable PEM private key"):
        load_private_key(public_key_pem(keys.merchant.public_key()))


def test_refuses_a_non_rsa_private_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="not an RSA key"):
        load_private_key(pem)


def test_generated_keys_have_the_documented_shape(keys: Keys) -> None:
    for key in (keys.doku, keys.merchant):
        assert key.key_size == 2048
        assert key.public_key().public_numbers().e == 65537
    assert keys.doku.private_numbers() != keys.merchant.private_numbers()


# Public keys ----------------------------------------------------------------------------------


def test_public_key_pem_is_spki(keys: Keys) -> None:
    pem = public_key_pem(keys.doku.public_key())
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert _same_key(keys.doku, load_public_key(pem))
    assert _same_key(keys.doku, load_public_key(pem.decode("ascii")))


def test_loads_pkcs1_public_keys(keys: Keys) -> None:
    pem = keys.doku.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert pem.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    assert _same_key(keys.doku, load_public_key(pem))


@pytest.mark.parametrize(
    "shape",
    ["one-line", "pem-lines", "padded-with-whitespace", "str", "armour-with-whitespace"],
)
def test_loads_bare_base64_and_loose_pem(vectors: dict[str, Any], shape: str) -> None:
    pem = vectors["keys"]["public_key_pem_spki"].encode("ascii")
    private = load_private_key(vectors["keys"]["private_key_pem_pkcs8"])
    value: str | bytes
    if shape == "one-line":
        value = b"".join(_pem_body(pem).split())
    elif shape == "pem-lines":
        value = _pem_body(pem)
    elif shape == "padded-with-whitespace":
        value = b"\n  " + _pem_body(pem).replace(b"\n", b"\r\n") + b"  \n"
    elif shape == "str":
        value = _pem_body(pem).decode("ascii")
    else:
        value = b"\n\n" + pem + b"\n"
    assert _same_key(private, load_public_key(value))


def test_bare_base64_is_der_spki(keys: Keys) -> None:
    der = keys.doku.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert _same_key(keys.doku, load_public_key(base64.b64encode(der)))


@pytest.mark.parametrize(
    "value",
    ["", "   ", "garbage", "!!!!", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"],
)
def test_refuses_garbage_public_keys(value: str) -> None:
    with pytest.raises(ValueError, match="not a usable public key"):
        load_public_key(value)


def test_refuses_a_private_key_as_public(keys: Keys) -> None:
    with pytest.raises(ValueError, match="not a usable public key"):
        load_public_key(private_key_pem(keys.merchant))


@pytest.mark.parametrize("encoding", ["pem", "base64"])
def test_refuses_a_non_rsa_public_key(ec_key: ec.EllipticCurvePrivateKey, encoding: str) -> None:
    public = ec_key.public_key()
    if encoding == "pem":
        value = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        value = base64.b64encode(
            public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    with pytest.raises(ValueError, match="not an RSA key"):
        load_public_key(value)
