"""JSON on the hot paths: orjson where it gives what the standard library gives, :mod:`json`
for the rest.

Every request body is parsed, and every answer, cache entry and ledger line encoded, once per
request; orjson does each several times faster than :mod:`json`. It is used only where its result
is the standard library's: what it refuses (a lone surrogate, a body in UTF-16 or with a BOM, a
number out of range, a Decimal) and what it would read differently (an integer beyond 64 bits,
which it turns into a float) go to :mod:`json`, so what is accepted, and the bytes written, are
what :mod:`json` alone accepts and writes. Floats are the one difference in form: both write the
shortest text that reads back as the same float, orjson as ``1e-7`` where :mod:`json` writes
``1e-07``; DOKU's amounts are strings, and the journal keeps the bytes DOKU sent.

Signature canonicalisation does not come here: its bytes must match DOKU's SDK exactly
(:mod:`gateway.snap.canonical`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["dumps_ascii", "dumps_utf8", "loads"]

_UTF8 = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))

# A number token of 19 digits or more may not fit 64 bits, and orjson would read it as a float.
# Numbers follow ':', '[' or ',' (a top-level number is no JSON object); a string that merely
# looks like this sends the body to the standard library, which is only slower.
_LONG_INTEGER = re.compile(rb"[:\[,][ \t\n\r]*-?[0-9]{19}")
# The pattern above costs a regex step per byte (2-3 µs for a payment body, three times orjson's
# parse). Nearly every body has no run of 19 digits anywhere: one C translate and one substring
# search (a tenth of that) say so, and only a body that has one is searched with the pattern.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_NINETEEN_DIGITS = b"0" * 19


def _orjson(document: Any) -> bytes | None:
    """orjson's encoding, or None where it would differ from the standard library's."""
    try:
        encoded = orjson.dumps(document)
    except TypeError:  # a lone surrogate, an integer beyond 64 bits, a Decimal, ...
        return None
    # orjson writes NaN and infinities as null; the standard library writes NaN, Infinity.
    # (A document with a real null takes the slow way too; the hot paths' documents have none.)
    if b"null" in encoded:
        return None
    # orjson's bytes keep the 4 KiB buffer they were written into, whatever their length: kept
    # in a cache or a replay store, 100 000 of them would hold 400 MiB. A copy is exact-sized.
    return bytes(memoryview(encoded))


def dumps_utf8(document: Any) -> bytes:
    """``json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()``.

    Raises :class:`UnicodeEncodeError` for a lone surrogate, as that expression does."""
    encoded = _orjson(document)
    if encoded is None:
        return _UTF8.encode(document).encode("utf-8")
    return encoded


def dumps_ascii(document: Any) -> bytes:
    """``json.dumps(document, separators=(",", ":")).encode("ascii")``: non-ASCII escaped."""
    encoded = _orjson(document)
    # Nothing to escape, the same bytes (DEL is ASCII, and escaped by the standard library).
    if encoded is not None and encoded.isascii() and b"\x7f" not in encoded:
        return encoded
    return _ASCII.encode(document).encode("ascii")


def loads(raw: bytes, slow: Callable[[bytes], Any]) -> Any:
    """``raw`` parsed by orjson, or by ``slow`` (the standard library's rules) whenever orjson
    refuses it or could read a number differently. ``slow``'s exceptions propagate."""
    if _NINETEEN_DIGITS not in raw.translate(_DIGITS_ONLY) or _LONG_INTEGER.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the slow path decides, and says why
    return slow(raw)
