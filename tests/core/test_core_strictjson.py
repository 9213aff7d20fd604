"""Strict JSON objects: no duplicate keys (however spelled), bounded depth and key count.

``loads_object`` finds duplicates by counting colons unless the text holds ``\\u`` escapes, so
the cases below deliberately put colons inside keys and values, and escapes in both.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.strictjson import JSONError, loads_object

ACCEPTED = [
    (b'{"a":1}', {"a": 1}),
    (b"{}", {}),
    (b' { "a" : 1 , "b" : [ 1 , 2 ] } ', {"a": 1, "b": [1, 2]}),  # whitespace anywhere
    (b'{"a:b":"c:d:e"}', {"a:b": "c:d:e"}),  # colons inside strings
    (b'{"a":":","b":"::"}', {"a": ":", "b": "::"}),
    (b'{"a":"{\\"x\\":1}"}', {"a": '{"x":1}'}),  # JSON text inside a string
    (b'{"\\u0061":1}', {"a": 1}),  # escaped key
    (b'{"\\u0061":1,"\\u0062":2}', {"a": 1, "b": 2}),  # two escaped, different keys
    (b'{"a":"\\\\u0061","\\\\u0061":1}', {"a": "\\u0061", "\\u0061": 1}),  # escaped backslash
    (b'{"a":"\\/"}', {"a": "/"}),
    (b'{"\xe4\xbd\xa0\xe5\xa5\xbd":"\xe4\xb8\x96\xe7\x95\x8c"}', {"你好": "世界"}),
    (b'{"a":{"a":1}}', {"a": {"a": 1}}),  # the same key at different levels is fine
    (b'{"a":[{"b":1},{"b":2}]}', {"a": [{"b": 1}, {"b": 2}]}),  # ... and in sibling objects
]


@pytest.mark.parametrize(("data", "expected"), ACCEPTED, ids=[d.decode() for d, _ in ACCEPTED])
def test_accepted(data: bytes, expected: dict[str, Any]) -> None:
    assert loads_object(data) == expected


REJECTED = [
    # duplicates, fast path (no \u escapes)
    (b'{"a":1,"a":1}', "duplicate, same value"),
    (b'{"a":1,"a":2}', "duplicate, different value"),
    (b'{"a":"x:y","a":"z"}', "duplicate whose dropped value holds a colon"),
    (b'{"a":"z","a":"x:y"}', "duplicate whose kept value holds a colon"),
    (b'{"a:":1,"a:":1}', "duplicate key that holds a colon"),
    (b'{"a":{"b":1,"b":2}}', "duplicate in a nested object"),
    (b'{"a":[{"b":1,"b":2}]}', "duplicate in an object inside an array"),
    (b'{"a":{"x":1},"a":{"x":1}}', "duplicate with object values"),
    (b'{"a":1 , "a" : 1}', "duplicate with whitespace"),
    # duplicates spelled with escapes (exact path)
    (b'{"a":1,"\\u0061":2}', "duplicate: plain and escaped spelling"),
    (b'{"\\u0061":1,"a":2}', "duplicate: escaped then plain"),
    (b'{"\\u0069ss":1,"i\\u0073s":2}', "keys differing only by which char is escaped"),
    (b'{"\\u0061":1,"\\u0061":1}', "same escaped spelling twice"),
    (b'{"\\u0041":1,"\\u0041":2}', "upper-case escape twice"),
    (b'{"\\u00e9":1,"\xc3\xa9":2}', "escaped and raw UTF-8 of the same non-ASCII key"),
    (b'{"a\\u003a":1,"a:":2}', "escaped colon in a key duplicates a raw colon"),
    (b'{"x":"\\u003a","a":1,"a":2}', "an escaped colon elsewhere must not hide a duplicate"),
    (b'{"\\/":1,"/":2}', "escaped solidus duplicates a raw one"),
    # not an object
    (b"[]", "array"),
    (b'"a"', "string"),
    (b"1", "number"),
    (b"null", "null"),
    # not JSON
    (b"", "empty"),
    (b"{", "truncated"),
    (b'{"a":1}x', "trailing data"),
    (b'{"a":1}{}', "two documents"),
    (b'{"a":1,}', "trailing comma"),
    (b"{'a':1}", "single quotes"),
    (b'{"a":NaN}', "NaN"),
    (b'{"a":Infinity}', "Infinity"),
    (b'{"a":1e400}', "overflowing number"),
    (b'{"a":01}', "leading zero"),
    (b'{"a":1} // c', "comment"),
    (b'{"a":"\\ud800"}', "lone surrogate escape"),
    (b'{"a":"\x01"}', "raw control character"),
    (b'\xef\xbb\xbf{"a":1}', "UTF-8 byte-order mark"),
    (b'{"a":"\xff"}', "invalid UTF-8"),
    (b'{"a":"\xc3"}', "truncated UTF-8 sequence"),
    (b'{"a":"\xed\xa0\x80"}', "UTF-8-encoded surrogate"),
    (b'{"a":"\xc0\xaf"}', "overlong UTF-8"),
]


@pytest.mark.parametrize(("data", "why"), REJECTED, ids=[why for _, why in REJECTED])
def test_rejected(data: bytes, why: str) -> None:
    with pytest.raises(JSONError):
        loads_object(data)


def nested(depth: int, leaf: Any = 1) -> Any:
    """An object whose innermost container sits at ``depth`` (the outer object is depth 1)."""
    value: Any = leaf
    for level in range(depth - 1):
        value = [value] if level % 2 else {"n": value}
    return {"n": value}


@pytest.mark.parametrize("escaped", [False, True])
@pytest.mark.parametrize("max_depth", [1, 2, 3, 8])
def test_depth_limit_is_exact(max_depth: int, escaped: bool) -> None:
    extra = b',"\\u0065":0' if escaped else b""  # \u escapes take the exact path
    at_limit = orjson.dumps(nested(max_depth))[:-1] + extra + b"}"
    over = orjson.dumps(nested(max_depth + 1))[:-1] + extra + b"}"
    assert loads_object(at_limit, max_depth=max_depth)
    with pytest.raises(JSONError, match="deep"):
        loads_object(over, max_depth=max_depth)


def test_depth_counts_arrays_and_brackets_in_strings_do_not() -> None:
    assert loads_object(b'{"a":"[[[[{{{{"}', max_depth=1) == {"a": "[[[[{{{{"}
    with pytest.raises(JSONError):
        loads_object(b'{"a":[]}', max_depth=1)


@pytest.mark.parametrize("escaped", [False, True])
@pytest.mark.parametrize("nested_keys", [False, True])
@pytest.mark.parametrize("max_keys", [1, 2, 64])
def test_key_limit_is_exact_and_counts_nested_objects(
    max_keys: int, nested_keys: bool, escaped: bool
) -> None:
    def doc(n: int) -> bytes:
        names = [("\\u006b" if escaped else "k") + str(i) for i in range(n)]
        if nested_keys and n > 1:  # one key at the top, the rest one level down
            inner = ",".join(f'"{k}":1' for k in names[1:])
            return f'{{"{names[0]}":{{{inner}}}}}'.encode()
        return ("{" + ",".join(f'"{k}":1' for k in names) + "}").encode()

    assert loads_object(doc(max_keys), max_keys=max_keys)
    with pytest.raises(JSONError, match="too many keys"):
        loads_object(doc(max_keys + 1), max_keys=max_keys)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=6)


@given(json_objects, st.booleans())
def test_property_any_object_round_trips(obj: dict[str, Any], ascii_escapes: bool) -> None:
    data = json.dumps(obj, ensure_ascii=ascii_escapes).encode()
    assert loads_object(data, max_depth=32, max_keys=1024) == obj


@given(json_objects, st.data(), st.booleans(), st.booleans())
def test_property_any_added_duplicate_is_rejected(
    obj: dict[str, Any], data: st.DataObject, escape_key: bool, dup_first: bool
) -> None:
    key = data.draw(st.sampled_from(sorted(obj)))
    value = data.draw(json_values)
    spelled = (
        '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else c for c in key) + '"'
        if escape_key
        else json.dumps(key, ensure_ascii=False)
    )
    pair = spelled + ":" + json.dumps(value, ensure_ascii=False)
    body = json.dumps(obj, ensure_ascii=False)
    text = "{" + pair + "," + body[1:] if dup_first else body[:-1] + "," + pair + "}"
    with pytest.raises(JSONError):
        loads_object(text.encode(), max_depth=32, max_keys=1024)
