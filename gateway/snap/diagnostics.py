"""Why an X-SIGNATURE did not verify: the known sender mistakes, tried one by one (spec §5.2, §18).

The mistakes that fail DOKU integrations are few and well known: a body hashed in another form
(pretty-printed, keys sorted, ``\\/`` escaped, ``json.dumps`` with spaces), a path with or without
the proxy's prefix or the query string, the full URL instead of the path, ``Bearer `` inside the
string-to-sign, an upper-case body hash, hex or Base64url instead of Base64, a timestamp signed in
another zone or read from the clock twice. :func:`diagnose_signature` recomputes the signature for
each of them, and for pairs of them, and names the simplest combination that matches.

Pure: no I/O and no logging; the caller logs the sentence it returns. That sentence names variants
only, never the secret, the token or the signature. Meant for sandbox and UAT
(``security.signature_diagnostics``): a failing request costs a few hundred HMACs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from .canonical import minify
from .timestamps import WIB, parse_timestamp

__all__ = ["Diagnosis", "ReceivedRequest", "diagnose_clock", "diagnose_signature"]

#: Combinations of at most this many mistakes are searched: one explains most failures, two
#: cover the common pairs (a pretty body behind a prefix-stripping proxy); three would multiply
#: the search for little gain.
MAX_MISTAKES = 2
_HMAC_SHA512_BYTES = 64
_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{128}")


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """A transaction request as the gateway received it, with what it verified against."""

    method: str
    #: The path the gateway routes on (behind the proxy), without prefix and query.
    path: str
    query: str
    #: ``http.path_prefix``: what the gateway adds in front of ``path`` to verify.
    prefix: str
    #: The ``Authorization`` header verbatim, and the bare token taken from it.
    authorization: str
    token: str
    raw: bytes
    #: ``raw`` parsed as JSON (``None`` when it is not).
    document: Any
    timestamp: str
    signature: str
    host: str | None = None
    forwarded_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The likely cause: ``causes`` are short ids (``body:pretty``, ``path:no-prefix``…),
    ``message`` one sentence for the log; ``clock_offset`` is X-TIMESTAMP minus the server
    clock in seconds (``None`` when X-TIMESTAMP does not parse)."""

    causes: tuple[str, ...]
    message: str
    clock_offset: float | None


_V = TypeVar("_V", str, bytes)


@dataclass(frozen=True, slots=True)
class _Variant(Generic[_V]):
    cause: str  # "" for the form the gateway itself verifies
    value: _V
    mistake: str  # how the sender differs, as a phrase; "" for the gateway's form


#: One candidate string-to-sign: body, path, token, hash case, timestamp.
_Combination = tuple[_Variant[bytes], _Variant[str], _Variant[str], _Variant[str], _Variant[str]]


def diagnose_clock(timestamp: str, now: float, skew: float) -> Diagnosis:
    """Explain an X-TIMESTAMP the gateway refused: malformed, a time-zone error, or a clock."""
    try:
        offset = parse_timestamp(timestamp).timestamp() - now
    except ValueError:
        return Diagnosis(
            ("timestamp:format",),
            f"X-TIMESTAMP {timestamp!r} is not ISO-8601 with a zone "
            "(DOKU sends e.g. 2024-05-01T10:15:30+07:00 or 2024-05-01T03:15:30Z)",
            None,
        )
    if abs(offset) <= skew:
        return Diagnosis((), f"X-TIMESTAMP {_offset_phrase(offset)}, within ±{skew:.0f} s", offset)
    zone = _zone_error(offset)
    if zone:
        return Diagnosis(
            ("timestamp:zone",),
            f"X-TIMESTAMP {timestamp!r} {_offset_phrase(offset)}, outside ±{skew:.0f} s; a "
            "whole number of hours: a time-zone error (local time labelled 'Z', or UTC "
            "labelled '+07:00'), not a drifting clock",
            offset,
        )
    return Diagnosis(
        ("timestamp:clock",),
        f"X-TIMESTAMP {timestamp!r} {_offset_phrase(offset)}, outside ±{skew:.0f} s: the "
        "sender's or this server's clock is off (sync both with NTP)",
        offset,
    )


def diagnose_signature(secret: bytes, request: ReceivedRequest, now: float) -> Diagnosis:
    """Find which known sender mistake makes ``request``'s X-SIGNATURE verify with ``secret``."""
    try:
        offset: float | None = parse_timestamp(request.timestamp).timestamp() - now
    except ValueError:
        offset = None
    clock = f"; X-TIMESTAMP {_offset_phrase(offset)}" if offset is not None else ""
    expected = _decodings(request.signature)
    if not expected:
        return Diagnosis(("signature:format",), _shape(request.signature) + clock, offset)
    bodies = _bodies(request.raw, request.document)
    digests = {body.value: hashlib.sha256(body.value).hexdigest() for body in bodies}
    combinations = _by_mistakes(
        bodies,
        _paths(request),
        _tokens(request.authorization, request.token),
        _hash_cases(),
        _timestamps(request.timestamp),
    )
    keyed = hmac.new(secret, digestmod=hashlib.sha512)
    for combination in combinations:
        body, path, token, case, timestamp = combination
        digest = digests[body.value]
        if case.cause:
            digest = digest.upper()
        mac = keyed.copy()
        mac.update(
            f"{request.method}:{path.value}:{token.value}:{digest}:{timestamp.value}".encode()
        )
        actual = mac.digest()
        for encoding in expected:
            if not hmac.compare_digest(actual, encoding.value):
                continue
            mistakes = [v.mistake for v in (*combination, encoding) if v.cause]
            causes = tuple(v.cause for v in (*combination, encoding) if v.cause)
            if mistakes:  # none would mean the gateway's own form, which already failed
                sentence = "X-SIGNATURE verifies if the sender " + _join(mistakes)
                return Diagnosis(causes, sentence + clock, offset)
    return Diagnosis(
        ("secret",),
        "no known sender variant verifies (body forms, path with/without http.path_prefix and "
        "query, full URL, 'Bearer ' in the token part, hex/Base64url, upper-case hash, "
        "timestamp zone or ±1 s): the client secret most likely differs from the sender's "
        "(compare doku.client_secret with the dashboard's Secret Key), or a proxy rewrote the "
        "body" + clock,
        offset,
    )


def _by_mistakes(
    bodies: Sequence[_Variant[bytes]],
    paths: Sequence[_Variant[str]],
    tokens: Sequence[_Variant[str]],
    cases: Sequence[_Variant[str]],
    timestamps: Sequence[_Variant[str]],
) -> Iterator[_Combination]:
    """Every combination with at most :data:`MAX_MISTAKES` mistakes, fewest first, so the
    simplest explanation wins."""
    levels: list[list[_Combination]] = [[] for _ in range(MAX_MISTAKES + 1)]
    for combination in itertools.product(bodies, paths, tokens, cases, timestamps):
        mistakes = sum(1 for variant in combination if variant.cause)
        if mistakes <= MAX_MISTAKES:
            levels[mistakes].append(combination)
    for level in levels:
        yield from level


def _decodings(signature: str) -> list[_Variant[bytes]]:
    """The 64-byte MACs ``signature`` may encode: Base64 (right), hex or Base64url (mistakes)."""
    found: list[_Variant[bytes]] = []
    text = signature.strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == _HMAC_SHA512_BYTES:
        found.append(_Variant("", raw, ""))
    if _HEX_SIGNATURE.fullmatch(text):
        found.append(_Variant("signature:hex", bytes.fromhex(text), "sends the MAC as hex"))
    if "-" in text or "_" in text:
        try:
            url = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            url = b""
        if len(url) == _HMAC_SHA512_BYTES:
            found.append(_Variant("signature:base64url", url, "sends the MAC as Base64url"))
    return found


def _shape(signature: str) -> str:
    """Why ``signature`` cannot be an HMAC-SHA512 at all, from its length only."""
    try:
        size = len(base64.b64decode(signature.strip(), validate=True))
    except (binascii.Error, ValueError):
        size = -1
    if size in (256, 512):
        return (
            f"X-SIGNATURE is a {size * 8}-bit RSA signature (the token call's kind); a "
            "transaction call needs Base64 HMAC-SHA512 with the client secret"
        )
    if size == 32:
        return "X-SIGNATURE is an HMAC-SHA256; SNAP transaction calls use HMAC-SHA512"
    return (
        f"X-SIGNATURE is not Base64 of 64 bytes (got {len(signature)} characters; an "
        "HMAC-SHA512 in Base64 is 88 characters ending '==')"
    )


def _bodies(raw: bytes, document: Any) -> list[_Variant[bytes]]:
    forms: list[_Variant[bytes]] = [_Variant("", raw, "")]
    if document is not None:
        for ensure_ascii in (False, True):
            try:
                forms.append(_Variant("", minify(document, ensure_ascii=ensure_ascii), ""))
            except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form
                continue
        forms.extend(_mistaken_bodies(document))
    stripped = raw.strip()
    if stripped != raw:
        forms.append(
            _Variant("body:trimmed", stripped, "hashes the body without its surrounding whitespace")
        )
    if raw:
        forms.append(_Variant("body:empty", b"", "hashes an empty body"))
    unique: dict[bytes, _Variant[bytes]] = {}
    for form in forms:
        unique.setdefault(form.value, form)
    return list(unique.values())


def _mistaken_bodies(document: Any) -> Iterator[_Variant[bytes]]:
    def dumps(**options: Any) -> bytes | None:
        try:
            return json.dumps(document, **options).encode("utf-8")
        except (UnicodeEncodeError, ValueError, TypeError):
            return None

    php_default = dumps(separators=(",", ":"))
    forms = (
        ("body:pretty", dumps(indent=2, ensure_ascii=False), "hashes the body pretty-printed"),
        ("body:pretty", dumps(indent=2), "hashes the body pretty-printed with \\u escapes"),
        ("body:pretty", dumps(indent=4, ensure_ascii=False), "hashes the body indented by 4"),
        (
            "body:spaced",
            dumps(ensure_ascii=False),
            "hashes json.dumps(body) with its ', '/': ' separators, not the minified form",
        ),
        (
            "body:spaced",
            dumps(),
            "hashes json.dumps(body) with its ', '/': ' separators, not the minified form",
        ),
        (
            "body:sorted",
            dumps(separators=(",", ":"), ensure_ascii=False, sort_keys=True),
            "hashes the body with its keys sorted (keep the order received)",
        ),
        (
            "body:escaped-slashes",
            None if php_default is None else php_default.replace(b"/", b"\\/"),
            "hashes the body with '/' escaped as '\\/' (PHP json_encode without "
            "JSON_UNESCAPED_SLASHES)",
        ),
    )
    for cause, value, mistake in forms:
        if value is not None:
            yield _Variant(cause, value, mistake)


def _paths(request: ReceivedRequest) -> list[_Variant[str]]:
    query = f"?{request.query}" if request.query else ""
    verified = request.prefix + request.path + query
    paths = [_Variant("", verified, "")]
    prefix = request.prefix
    if prefix:
        paths.append(
            _Variant(
                "path:no-prefix",
                request.path + query,
                f"signs the path without http.path_prefix {prefix!r}: the URL it calls has no "
                "such prefix, so http.path_prefix should be empty",
            )
        )
    forwarded = request.forwarded_prefix
    if forwarded and forwarded != prefix:
        paths.append(
            _Variant(
                "path:forwarded-prefix",
                forwarded.rstrip("/") + request.path + query,
                f"signs the path with the prefix {forwarded!r} the proxy reports "
                f"(X-Forwarded-Prefix): set http.path_prefix = {forwarded.rstrip('/')!r}",
            )
        )
    if query:
        paths.append(
            _Variant(
                "path:no-query",
                request.prefix + request.path,
                "signs the path without its query string (SNAP signs the path with the query)",
            )
        )
    if request.host:
        for scheme in ("https", "http"):
            paths.append(
                _Variant(
                    "path:full-url",
                    f"{scheme}://{request.host}{verified}",
                    "signs the full URL; SNAP signs the path only",
                )
            )
    return paths


def _tokens(authorization: str, token: str) -> list[_Variant[str]]:
    tokens = [
        _Variant("", token, ""),
        _Variant(
            "token:bearer",
            f"Bearer {token}",
            "puts 'Bearer ' before the token in the string-to-sign",
        ),
    ]
    verbatim = authorization.strip()
    if verbatim not in (token, f"Bearer {token}"):
        tokens.append(
            _Variant(
                "token:bearer",
                verbatim,
                "puts the Authorization header verbatim in the string-to-sign, not the bare token",
            )
        )
    tokens.append(_Variant("token:missing", "", "leaves the token out of the string-to-sign"))
    return tokens


def _hash_cases() -> list[_Variant[str]]:
    return [
        _Variant("", "lower", ""),
        _Variant("hash:upper-case", "upper", "writes the body hash in upper-case hex"),
    ]


def _timestamps(timestamp: str) -> list[_Variant[str]]:
    """X-TIMESTAMP verbatim, the same instant in other zones, and one second either side (a
    sender that reads the clock once for the header and again for the signature)."""
    variants: list[_Variant[str]] = [_Variant("", timestamp, "")]
    try:
        moment = parse_timestamp(timestamp)
    except ValueError:
        return variants
    seconds = moment.replace(microsecond=0)
    others = [
        (
            "timestamp:zone",
            seconds.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "signs the time in UTC ('Z') while X-TIMESTAMP carries another zone: sign the "
            "header string verbatim",
        ),
        (
            "timestamp:zone",
            seconds.astimezone(WIB).isoformat(),
            "signs the time in WIB ('+07:00') while X-TIMESTAMP carries another zone: sign the "
            "header string verbatim",
        ),
    ]
    for delta in (-1, 1):
        shifted = _same_style(timestamp, moment + timedelta(seconds=delta))
        others.append(
            (
                "timestamp:second-read",
                shifted,
                f"signs a timestamp {abs(delta)} s {'earlier' if delta < 0 else 'later'} than "
                "X-TIMESTAMP: it reads the clock twice; use one value for both",
            )
        )
    seen = {timestamp}
    for cause, value, mistake in others:
        if value not in seen:
            seen.add(value)
            variants.append(_Variant(cause, value, mistake))
    return variants


def _same_style(original: str, moment: datetime) -> str:
    """``moment`` written like ``original``: same zone spelling, same fraction digits."""
    fraction = re.search(r"\.(\d+)", original)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        digits = len(fraction.group(1))
        text += "." + f"{moment.microsecond:06d}"[:digits].ljust(digits, "0")
    if original.endswith("Z"):
        return text + "Z"
    return text + original[-6:]


def _zone_error(offset: float) -> bool:
    """An offset of an hour or more, within two minutes of a whole number of half hours (zones
    such as India's +05:30 are half hours off)."""
    if abs(offset) < 3600 - 120:
        return False
    return abs(offset - round(offset / 1800) * 1800) <= 120


def _offset_phrase(offset: float) -> str:
    rounded = round(offset)
    if rounded == 0:
        return "matches the server clock"
    direction = "ahead of" if rounded > 0 else "behind"
    size = abs(rounded)
    hours = f" ({size / 3600:.1f} h)" if size >= 3600 else ""
    return f"is {size} s{hours} {direction} the server clock"


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", and ".join(phrases)
