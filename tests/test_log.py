from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gateway.config import settings_from_mapping
from gateway.log import FailureLog, RedactingFilter, configure_logging, mask_va, redact_also
from gateway.snap.keys import private_key_pem, public_key_pem

from .support import Keys


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


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _capture(log_format: str, secrets: list[str]) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", secrets, log_format)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return logging.getLogger("doku_gateway.test"), stream


def test_json_format_is_one_object_per_line_with_request_fields() -> None:
    try:
        logger, stream = _capture("json", [])
        extra = {"endpoint": "inquiry", "external_id": "x-1", "partner": "CID", "va": "****1234"}
        logger.info("inquiry refused: %s", "4002402", extra={**extra, "response_code": "4002402"})
        logger.warning("second line")
    finally:
        logging.getLogger().handlers.clear()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "inquiry refused: 4002402"
    assert (first["level"], first["logger"]) == ("INFO", "doku_gateway.test")
    assert first["time"].endswith("+07:00")
    assert {k: first[k] for k in extra} == extra
    assert first["response_code"] == "4002402"
    assert second["message"] == "second line"
    assert "endpoint" not in second


def test_referenced_values_are_redacted_in_text_and_json(keys: Keys) -> None:
    dsn = "postgres://billing:hunter2-pass@db/bills"
    data = {
        "doku": {
            "client_id": keys.client_id,
            "client_secret": keys.client_secret,
            "public_key": public_key_pem(keys.doku.public_key()).decode(),
        },
        "merchant": {"private_key": private_key_pem(keys.merchant).decode()},
        "resolvers": [{"use": "x:y", "options": {"dsn": "env:BILLING_DSN"}}],
    }
    settings = settings_from_mapping(data, {"BILLING_DSN": dsn})
    for log_format in ("text", "json"):
        try:
            logger, stream = _capture(log_format, list(settings.redacted))
            logger.error("cannot connect to %s", dsn, extra={"reason": f"bad {dsn}"})
            try:
                raise ConnectionError(f"refused: {dsn}")
            except ConnectionError:
                logger.exception("with traceback")
        finally:
            logging.getLogger().handlers.clear()
        output = stream.getvalue()
        assert "hunter2-pass" not in output
        assert output.count("[redacted]") >= 3


def test_mask_va_keeps_the_last_four_digits() -> None:
    assert mask_va("   88899 00001234") == "*********1234"
    assert mask_va("123") == "123"


def test_repeated_failure_logs_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    failures = FailureLog(logging.getLogger("doku_gateway.t"), "journal error", 60, lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="doku_gateway"):
        for _ in range(26):  # Redis down: four shards, every second
            failures.failed(ConnectionError("Connection refused"))
            now[0] += 0.1
        now[0] = 61.0
        failures.failed(ConnectionError("Connection refused"))
        failures.succeeded()
        failures.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "journal error: ConnectionError: Connection refused",
        "journal error: still failing (26 failures in 61 s): ConnectionError: Connection refused",
        "journal error: recovered after 27 failure(s)",
    ]
    assert [r.exc_info is not None for r in caplog.records] == [True, False, False]


def test_a_secret_added_later_is_redacted_by_the_configured_filter() -> None:
    # A rotated secret reloaded from its file must be as invisible as the one given at start.
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    handler.addFilter(RedactingFilter(["SK-first-secret"]))
    root.addHandler(handler)
    try:
        redact_also(["SK-rotated-secret", ""])
        item = record("old=%s new=%s", "SK-first-secret", "SK-rotated-secret")
        for found in handler.filters:
            assert isinstance(found, RedactingFilter) and found.filter(item)
        assert item.getMessage() == "old=[redacted] new=[redacted]"
    finally:
        root.removeHandler(handler)
