from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.snap.keys import load_private_key, load_public_key


@pytest.fixture(scope="session")
def vector_private_key(vectors: dict[str, Any]) -> rsa.RSAPrivateKey:
    """The throwaway key of spec §15.1 that produced every RSA vector."""
    return load_private_key(vectors["keys"]["private_key_pem_pkcs8"])


@pytest.fixture(scope="session")
def vector_public_key(vectors: dict[str, Any]) -> rsa.RSAPublicKey:
    return load_public_key(vectors["keys"]["public_key_pem_spki"])
