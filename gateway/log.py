"""Logging set-up for the command line, the filter that keeps secrets out of logs, and the
helpers that keep a repeated failure from flooding them.

Libraries never configure handlers; :func:`configure_logging` is called once by the CLI. The
gateway itself never logs a secret, a key, a token or a signature; :class:`RedactingFilter` is the
second line of defence against a resolver plugin or a library that does, and it removes every
value the configuration read through ``env:``/``file:``.

Two formats: ``text`` (one human-readable line) and ``json`` (one object per line with ``time``,
``level``, ``logger``, ``message`` and the request fields a handler attached with ``extra=``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from .snap.timestamps import WIB

__all__ = [
    "REQUEST_FIELDS",
    "FailureLog",
    "JsonFormatter",
    "RedactingFilter",
    "configure_logging",
    "get_logger",
    "mask_va",
]

# JWTs (three base64url parts, the first starting with eyJ), PEM blocks, and base64 runs the
# length of an RSA-2048 or HMAC-SHA512 signature.
_PATTERNS = (
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S),
    re.compile(r"[A-Za-z0-9+/]{80,}={0,2}"),
)

#: ``extra=`` keys a request log record may carry, in the order the JSON format writes them.
REQUEST_FIELDS = (
    "endpoint",
    "external_id",
    "partner",
    "response_code",
    "reason",
    "latency_ms",
    "va",
    "clock_offset_s",
)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"doku_gateway.{name}")


def mask_va(va: str | None) -> str | None:
    """A VA number with all but its last 4 digits masked (``****1234``)."""
    if not va:
        return va
    code = va.replace(" ", "")
    return "*" * max(len(code) - 4, 0) + code[-4:]


class RedactingFilter(logging.Filter):
    """Replaces configured secrets and anything shaped like a token, key or signature."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first: a secret that contains another is removed whole.
        found = {s for s in secrets if len(s) >= 6} | {s.strip() for s in secrets if len(s) >= 6}
        self._secrets = tuple(sorted((s for s in found if len(s) >= 6), key=len, reverse=True))

    def add(self, secrets: Iterable[str]) -> None:
        """Also redact ``secrets`` from now on (a secret reloaded from its file)."""
        self._secrets = RedactingFilter((*self._secrets, *secrets))._secrets

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        for pattern in _PATTERNS:
            text = pattern.sub("[redacted]", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        for name in REQUEST_FIELDS:
            value = record.__dict__.get(name)
            if isinstance(value, str):
                record.__dict__[name] = self.redact(value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO-8601 WIB), ``level``, ``logger``, ``message``,
    the request fields present on the record, and ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, WIB).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                document[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        return json.dumps(document, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    """Today's text line, with the request fields appended as ``key=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = [
            f"{name}={record.__dict__[name]}"
            for name in REQUEST_FIELDS
            if record.__dict__.get(name) is not None
        ]
        return f"{line} [{' '.join(fields)}]" if fields else line


def configure_logging(
    level: str = "INFO", secrets: Iterable[str] = (), log_format: str = "text"
) -> RedactingFilter:
    """Log to stderr with a redacting filter on the handler; returns the filter."""
    redactor = RedactingFilter(secrets)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else _TextFormatter())
    handler.addFilter(redactor)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    return redactor


class FailureLog:
    """Logs a failure that repeats (Redis down, a hook failing) once per transition and at most
    once per ``interval`` while it lasts, with a count; one traceback per outage at most.

    ``failed()`` on every failure, ``succeeded()`` on every success: the first failure logs a
    warning with its traceback, later ones a line with the count every ``interval`` seconds,
    and the first success after failures one line saying it recovered.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.interval = interval
        self.clock = clock
        self.failures = 0
        self._unlogged = 0
        self._last = 0.0

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        now = self.clock()
        if self.failures == 1:
            self.logger.warning("%s: %s", self.what, _describe(exc), exc_info=exc)
            self._last, self._unlogged = now, 0
        elif now - self._last >= self.interval:
            self.logger.warning(
                "%s: still failing (%d failures in %.0f s): %s",
                self.what,
                self._unlogged + 1,
                now - self._last,
                _describe(exc),
            )
            self._last, self._unlogged = now, 0
        else:
            self._unlogged += 1

    def succeeded(self) -> None:
        if self.failures:
            self.logger.warning("%s: recovered after %d failure(s)", self.what, self.failures)
            self.failures = 0
            self._unlogged = 0


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def redact_also(secrets: Iterable[str]) -> None:
    """Tell every redacting filter on the root logger's handlers about new secret values (the
    gateway configures one through :func:`configure_logging`; an embedding app may have none)."""
    values = [s for s in secrets if s]
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, RedactingFilter):
                found.add(values)
