from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.snap.canonical import body_candidates, minify, sha256_hex

DATA = Path(__file__).parents[1] / "data"
SHARED_VECTORS = Path(__file__).parents[3] / "shared" / "spec" / "vectors.json"
NAME = "Budi Śantoso / Jl. Merdeka"


def _body(vectors: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = vectors["symmetric_signature"]["request_body_object"]
    return document


def _non_ascii(vectors: dict[str, Any]) -> dict[str, str]:
    section: dict[str, str] = vectors["minification_pitfalls"]["non_ascii_body"]
    return section


def _utf8_minified(vectors: dict[str, Any]) -> str:
    section = _non_ascii(vectors)
    return next(v for k, v in section.items() if k.startswith("utf8_unescaped_minified"))


def test_vectors_copy_equals_the_shared_spec() -> None:
    if not SHARED_VECTORS.exists():
        pytest.skip(f"{SHARED_VECTORS} is not present")
    assert (DATA / "vectors.json").read_bytes() == SHARED_VECTORS.read_bytes()


def test_minify_reproduces_the_sdk_body_byte_for_byte(vectors: dict[str, Any]) -> None:
    expected = vectors["symmetric_signature"]["minified_body_as_sdk_builds_it"].encode("utf-8")
    assert minify(_body(vectors), ensure_ascii=True) == expected
    # The body is plain ASCII, so every sender's minifier agrees on it.
    assert minify(_body(vectors)) == expected


def test_sha256_of_the_minified_body(vectors: dict[str, Any]) -> None:
    symmetric = vectors["symmetric_signature"]
    digest = sha256_hex(minify(_body(vectors)))
    assert digest == symmetric["sha256_hex_lower_of_minified"]
    assert digest == vectors["minification_pitfalls"]["minified_body_sha256"]
    assert digest == digest.lower() and len(digest) == 64


def test_pretty_printed_body_hashes_differently(vectors: dict[str, Any]) -> None:
    pitfalls = vectors["minification_pitfalls"]
    pretty = json.dumps(_body(vectors), indent=2).encode("utf-8")
    assert sha256_hex(pretty) == pitfalls["pretty_printed_body_sha256"]
    assert sha256_hex(pretty) != pitfalls["minified_body_sha256"]
    # Re-minifying what was received recovers the signed form.
    assert sha256_hex(minify(json.loads(pretty))) == pitfalls["minified_body_sha256"]


def test_sorted_keys_hash_differently(vectors: dict[str, Any]) -> None:
    pitfalls = vectors["minification_pitfalls"]
    resorted = json.loads(json.dumps(_body(vectors), sort_keys=True))
    assert sha256_hex(minify(resorted)) == pitfalls["reordered_keys_minified_sha256"]
    assert sha256_hex(minify(resorted)) != pitfalls["minified_body_sha256"]


def test_minify_keeps_key_order_and_string_padding(vectors: dict[str, Any]) -> None:
    body = minify(_body(vectors)).decode("utf-8")
    assert body.startswith('{"partnerServiceId":"   88899","customerNo":')
    assert '"virtualAccountNo":"   8889912345678901234567890"' in body
    assert list(json.loads(body)) == list(_body(vectors))


def test_non_ascii_body_python_sdk_form_is_escaped(vectors: dict[str, Any]) -> None:
    section = _non_ascii(vectors)
    document = {**_body(vectors), "virtualAccountName": NAME}
    escaped = minify(document, ensure_ascii=True)
    assert escaped == section["python_sdk_minified"].encode("utf-8")
    assert sha256_hex(escaped) == section["python_sdk_sha256"]
    assert b"\\u015a" in escaped
    # Python never escapes "/" (PHP would, without JSON_UNESCAPED_SLASHES).
    assert b"\\/" not in escaped and b"Santoso / Jl." not in escaped


def test_non_ascii_body_utf8_form_is_unescaped(vectors: dict[str, Any]) -> None:
    section = _non_ascii(vectors)
    document = {**_body(vectors), "virtualAccountName": NAME}
    unescaped = minify(document)
    assert unescaped == _utf8_minified(vectors).encode("utf-8")
    assert sha256_hex(unescaped) == section["utf8_unescaped_sha256"]
    assert NAME.encode("utf-8") in unescaped


def test_non_ascii_vector_documents_are_the_vector_body_plus_a_name(
    vectors: dict[str, Any],
) -> None:
    section = _non_ascii(vectors)
    expected = {**_body(vectors), "virtualAccountName": NAME}
    assert json.loads(section["python_sdk_minified"]) == expected
    assert json.loads(_utf8_minified(vectors)) == expected


def test_candidates_of_an_empty_body() -> None:
    assert list(body_candidates(b"", None)) == [("empty", b"")]


def test_candidates_of_a_minified_ascii_body_are_one(vectors: dict[str, Any]) -> None:
    raw = minify(_body(vectors))
    assert list(body_candidates(raw, json.loads(raw))) == [("minified-utf8", raw)]


def test_candidates_of_a_pretty_ascii_body(vectors: dict[str, Any]) -> None:
    raw = json.dumps(_body(vectors), indent=2).encode("utf-8")
    candidates = list(body_candidates(raw, json.loads(raw)))
    assert candidates == [("minified-utf8", minify(_body(vectors))), ("raw", raw)]


def test_candidates_of_a_pretty_non_ascii_body_try_each_form(vectors: dict[str, Any]) -> None:
    document = {**_body(vectors), "virtualAccountName": NAME}
    raw = json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")
    candidates = list(body_candidates(raw, json.loads(raw)))
    assert [name for name, _ in candidates] == ["minified-utf8", "minified-ascii", "raw"]
    assert candidates[0][1] == _utf8_minified(vectors).encode("utf-8")
    assert candidates[1][1] == _non_ascii(vectors)["python_sdk_minified"].encode("utf-8")
    assert candidates[2][1] == raw


def test_candidates_skip_raw_when_it_equals_the_escaped_form(vectors: dict[str, Any]) -> None:
    raw = _non_ascii(vectors)["python_sdk_minified"].encode("utf-8")
    names = [name for name, _ in body_candidates(raw, json.loads(raw))]
    assert names == ["minified-utf8", "minified-ascii"]


def test_candidates_of_a_non_json_body_are_the_raw_bytes() -> None:
    raw = b"partnerServiceId=88899"
    assert list(body_candidates(raw, None)) == [("raw", raw)]


def test_candidates_survive_a_lone_surrogate() -> None:
    # JSON allows "\ud800"; it has no UTF-8 form, so only the escaped minification exists.
    raw = b'{"name": "\\ud800"}'
    candidates = list(body_candidates(raw, json.loads(raw)))
    assert candidates == [("minified-ascii", b'{"name":"\\ud800"}'), ("raw", raw)]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), _JSON, max_size=6))
def test_minify_matches_json_dumps_exactly(document: dict[str, Any]) -> None:
    for ensure_ascii in (False, True):
        expected = json.dumps(document, separators=(",", ":"), ensure_ascii=ensure_ascii)
        try:
            wanted = expected.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form either way
            with pytest.raises(UnicodeEncodeError):
                minify(document, ensure_ascii=ensure_ascii)
            continue
        assert minify(document, ensure_ascii=ensure_ascii) == wanted
