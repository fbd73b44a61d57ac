"""Logging set-up for the command line, and the filter that keeps secrets out of logs.

Libraries never configure handlers; :func:`configure_logging` is called once by the CLI. The
gateway itself never logs a secret, a key, a token or a signature; :class:`RedactingFilter` is the
second line of defence against a resolver plugin or a library that does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["RedactingFilter", "configure_logging", "get_logger"]

# JWTs (three base64url parts, the first starting with eyJ), PEM blocks, and base64 runs the
# length of an RSA-2048 or HMAC-SHA512 signature.
_PATTERNS = (
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S),
    re.compile(r"[A-Za-z0-9+/]{80,}={0,2}"),
)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"doku_gateway.{name}")


class RedactingFilter(logging.Filter):
    """Replaces configured secrets and anything shaped like a token, key or signature."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= 6)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
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
        return True


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> RedactingFilter:
    """Log to stderr with a redacting filter on the handler; returns the filter."""
    redactor = RedactingFilter(secrets)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    return redactor
