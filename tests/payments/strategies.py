"""Hypothesis strategies for notification bodies: any JSON value, any string, anywhere."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from gateway.doku.simulator import payment_body

__all__ = ["CODE", "encode", "json_values", "notifications", "texts"]

CODE = "8889900001234"
# Characters that broke line-oriented or UTF-8-only encodings, mixed into any code point.
ODD = ["\ud800", "\udfff", "\n", "\r", "\x00", "\u2028", '"', "\\", "{", "}", "\x7f", "é", "😀"]
# Any code point (surrogates included), the odd ones often (st.text would rarely draw them).
texts = st.lists(
    st.one_of(st.sampled_from(ODD), st.characters(exclude_categories=())), max_size=12
).map("".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
TOP_FIELDS = [*payment_body(CODE, "   88899", "1.00"), "somethingNew"]
INFO_FIELDS = [*payment_body(CODE, "   88899", "1.00")["additionalInfo"], "somethingNew"]


@st.composite
def notifications(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """A notification body with any paymentRequestId and one field (mostly one its rules leave
    free, sometimes any) set to any JSON value, and its bytes as a sender might send them:
    ``\\u`` escapes (DOKU's Python SDK) or raw UTF-8 (surrogates included)."""
    document = payment_body(CODE, "   88899", "1.00")
    document["paymentRequestId"] = draw(texts)
    where = draw(st.sampled_from(["free", "free", "free", "top", "info"]))
    value = draw(json_values)
    if where == "free":
        target = draw(st.sampled_from([document, document["additionalInfo"]]))
        target[draw(texts.filter(lambda key: key not in target))] = value
    elif where == "top":
        document[draw(st.sampled_from(TOP_FIELDS))] = value
    else:
        document["additionalInfo"][draw(st.sampled_from(INFO_FIELDS))] = value
    return document, encode(document, escaped=draw(st.booleans()))


def encode(document: Any, *, escaped: bool) -> bytes:
    """The bytes a sender sends: ``\\u`` escapes (DOKU's Python SDK) or raw UTF-8, where even a
    lone surrogate is written as its own bytes (the gateway's parser accepts both)."""
    if escaped:
        return json.dumps(document, ensure_ascii=True).encode()
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
