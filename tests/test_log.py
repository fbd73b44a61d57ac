from __future__ import annotations

import logging

from gateway.log import RedactingFilter


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("doku_gateway.x", logging.INFO, __file__, 1, message, args, None)


def test_redacts_configured_secret_tokens_signatures_and_keys() -> None:
    redactor = RedactingFilter(["SK-super-secret-value"])
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MTQ1MzU2MzB9.c2lnbmF0dXJlc2lnbmF0dXJl"
    signature = (
        "nnmWbtDdJF0EEQ9RWyfiTiojsBN3ZFfRpa0M4XXZ0kCnkATHjE+eWQw0Q1m1oFDgMcLOMYLEjI8W+1LLNM5YZQ=="
    )
    pem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"
    item = record("secret=%s token=%s sig=%s key=%s", "SK-super-secret-value", jwt, signature, pem)
    assert redactor.filter(item)
    text = item.getMessage()
    for leaked in ("SK-super-secret-value", jwt, signature, "MIIE"):
        assert leaked not in text
    assert text.count("[redacted]") == 4


def test_leaves_ordinary_messages_alone() -> None:
    item = record("inquiry refused: %s %s", "4002401", "Invalid Field Format {X-TIMESTAMP}")
    RedactingFilter(["SK-x-secret"]).filter(item)
    assert item.getMessage() == "inquiry refused: 4002401 Invalid Field Format {X-TIMESTAMP}"


def test_redacts_tracebacks() -> None:
    try:
        raise RuntimeError("SK-super-secret-value")
    except RuntimeError:
        import sys

        item = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    RedactingFilter(["SK-super-secret-value"]).filter(item)
    assert item.exc_text and "SK-super-secret-value" not in item.exc_text
