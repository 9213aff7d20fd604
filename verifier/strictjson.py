"""Strict JSON for token payloads and footers.

orjson parses (and rejects invalid UTF-8, control characters and trailing data); on top of
it we refuse duplicate keys, deep nesting and too many keys.

Duplicate keys are found without a second parse. In the raw text every ``:`` is either the
separator after a key or a character inside a string. Unless the text uses ``\\u`` escapes
(which could spell a colon), a string's raw spelling holds exactly the colons of its value.
orjson's re-serialisation of what it kept writes each kept key's separator and each kept
string verbatim, so its colon count equals the raw count exactly when nothing (no duplicate
key, with its value) was discarded. Text with ``\\u`` escapes takes an exact, slower path.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class JSONError(ValueError):
    """Input is not acceptable strict JSON."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise JSONError("duplicate keys")
    return d


_SLOW = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def loads_object(data: bytes, *, max_depth: int = 8, max_keys: int = 64) -> dict[str, Any]:
    """Parse ``data`` as a JSON object under the limits, or raise JSONError."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise JSONError("invalid JSON") from err
    if type(obj) is not dict:
        raise JSONError("JSON value is not an object")
    if b"\\u" in data:
        # Rare: escapes could spell a colon. Check duplicates exactly with a pairs hook.
        _walk(obj, 1, max_depth, [0], max_keys)
        _SLOW.decode(data.decode())
        return obj
    # orjson writes every kept key with one separator colon and every kept string verbatim.
    try:
        canonical = orjson.dumps(obj)
    except orjson.JSONEncodeError as err:
        raise JSONError("unrepresentable value") from err
    if b"{" in canonical[1:] or b"[" in canonical:
        acc = [0]  # nested containers (or brackets in strings): count keys and depth
        _walk(obj, 1, max_depth, acc, max_keys)
    elif len(obj) > max_keys:
        raise JSONError("too many keys")
    if data.count(b":") != canonical.count(b":"):
        raise JSONError("duplicate keys")
    return obj


def loads_unique(data: bytes) -> Any:
    """Parse ``data`` as any JSON value in which no object repeats a key, or raise JSONError.

    No depth or key limits (a request body is bounded by its size). Fast for the usual
    request body, a flat object: every key is followed by a raw ``:``, so a text with no more
    colons than its top-level object kept keys holds no other key anywhere, and so no
    duplicate. Anything else takes the colon count against orjson's re-serialisation (see the
    module's docstring), and text with ``\\u`` escapes, or nested too deeply for orjson to
    write back, an exact parse with a pairs hook.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise JSONError("invalid JSON") from err
    if type(value) is dict and data.count(b":") == len(value):
        return value
    if b"\\u" not in data:
        try:
            canonical = orjson.dumps(value)
        except orjson.JSONEncodeError:
            pass  # nested deeper than orjson writes: the exact path below
        else:
            if data.count(b":") != canonical.count(b":"):
                raise JSONError("duplicate keys")
            return value
    try:
        _SLOW.decode(data.decode())
    except RecursionError as err:
        raise JSONError("nested too deeply") from err
    except json.JSONDecodeError as err:  # not seen: orjson accepted the text
        raise JSONError("invalid JSON") from err
    return value


def _walk(value: Any, depth: int, max_depth: int, acc: list[int], max_keys: int) -> None:
    """Enforce the depth limit and count keys in ``acc[0]``."""
    if depth > max_depth:
        raise JSONError("nested too deeply")
    if type(value) is dict:
        acc[0] += len(value)
        if acc[0] > max_keys:
            raise JSONError("too many keys")
        value = value.values()
    for v in value:
        if type(v) is dict or type(v) is list:
            _walk(v, depth + 1, max_depth, acc, max_keys)
