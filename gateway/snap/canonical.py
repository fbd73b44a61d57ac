"""Body canonicalisation for the symmetric signature (spec §5.2, §15.4, §18.1–5).

DOKU hashes *minified* JSON, and its senders minify differently: JavaScript, PHP and Java keep
non-ASCII characters as UTF-8, DOKU's Python SDK escapes them as ``\\uXXXX``, and a sender that
posts an already-minified body makes the raw bytes the signed form. A receiver cannot know which
one it faces, so it tries each candidate. Key order is kept as received and string values are never
touched: sorting keys or trimming the space padding of ``partnerServiceId`` changes the hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["body_candidates", "minify", "sha256_hex"]

_UNESCAPED = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_ESCAPED = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


def _reject(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


def _c_encoder(ensure_ascii: bool) -> Callable[[Any], str] | None:
    """The C encoder json.dumps builds per call, built once (a parsed body has no cycles, so
    the cycle check goes too). Same output as ``json.dumps(separators=(',', ':'))``."""
    make = getattr(json.encoder, "c_make_encoder", None)
    string = getattr(
        json.encoder, "c_encode_basestring_ascii" if ensure_ascii else "c_encode_basestring", None
    )
    if make is None or string is None:
        return None
    encoder = make(None, _reject, string, None, ":", ",", False, False, True)
    return lambda document: "".join(encoder(document, 0))


_FAST = {False: _c_encoder(False), True: _c_encoder(True)}


def minify(document: Any, *, ensure_ascii: bool = False) -> bytes:
    """Serialise ``document`` with no whitespace, in its own key order, as UTF-8 bytes.

    ``ensure_ascii=True`` reproduces DOKU's Python SDK (``json.dumps(obj, separators=(',', ':'))``);
    the default reproduces ``JSON.stringify``, PHP's ``JSON_UNESCAPED_UNICODE|SLASHES`` and Jackson.
    """
    fast = _FAST[ensure_ascii]
    if fast is not None and isinstance(document, dict | list):
        return fast(document).encode("utf-8")
    encoder = _ESCAPED if ensure_ascii else _UNESCAPED
    return encoder.encode(document).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256, the body hash of the string-to-sign."""
    return hashlib.sha256(data).hexdigest()


def body_candidates(raw: bytes, document: Any) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, bytes)`` for each form a sender may have hashed, most likely first.

    ``document`` is ``raw`` already parsed (``None`` when it is not JSON). Duplicate candidates
    are skipped so a plain-ASCII minified body costs one hash, not three.
    """
    if not raw:
        yield "empty", b""
        return
    seen: list[bytes] = []
    if document is not None:
        try:
            unescaped: bytes | None = minify(document)
        except UnicodeEncodeError:
            # A lone surrogate ("\ud800") has no UTF-8 form; only the escaped form exists.
            unescaped = None
        if unescaped is not None:
            seen.append(unescaped)
            yield "minified-utf8", unescaped
        if unescaped is None or not unescaped.isascii():
            escaped = minify(document, ensure_ascii=True)
            seen.append(escaped)
            yield "minified-ascii", escaped
    if raw not in seen:
        yield "raw", raw
