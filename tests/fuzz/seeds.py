"""Writes the seed corpus of both fuzz targets into tests/fuzz/corpus/ (committed).

    python tests/fuzz/seeds.py

Seeds come from the official PASETO vectors (../shared/vectors/paseto/v4.json, read through
helpers_core.VECTORS) and from every row of the service catalogue
(tests/service/test_service_catalogue.py), built with the fixed keys of helpers_core and the
clock stopped at its NOW, so the tokens are genuine, fresh and trusted at the time the core
target judges them:

- ``corpus/core/<name>.token``: a token as sent; ``<name>.claims``: the claims it signs (the
  core target also signs its input as claims);
- ``corpus/http1/<name>``: the whole request, bytes as the catalogue sends them, with the
  placeholder credential :data:`CREDENTIAL`; plus :data:`MALFORMED`, requests that one framing
  or the other refuses (the log-hygiene test sends these too).

Only this generator and the tests read ../shared; the corpus itself is self-contained.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "support"), str(HERE.parent / "service")]

CORPUS = HERE / "corpus"
# Shaped like a real scanner credential (s-<12 hex>.<43 base64url>); tests swap in a real one.
CREDENTIAL = "s-c0ffeec0ffee." + "PLACEHOLDERsecret" * 2 + "PLACEHOLD"
assert len(CREDENTIAL) == len("s-") + 12 + 1 + 43

_HEAD = b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
_AUTH = b"Authorization: Bearer " + CREDENTIAL.encode() + b"\r\n"
_TOKEN = b"v4.public.TOKEN"  # replaced by a real token when written


def _req(body: bytes, *lines: bytes, head: bytes = _HEAD, auth: bytes = _AUTH) -> bytes:
    return head + auth + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


_JSON = b"Content-Type: application/json"
_BODY = b'{"token": "' + _TOKEN + b'"}'
_LEN = b"Content-Length: %d" % len(_BODY)

# Requests a framing refuses: name -> bytes (the token placeholder is filled in when written).
MALFORMED: dict[str, bytes] = {
    # An obs-folded Authorization line (the credential continues on the next line).
    "obs_fold_authorization": _HEAD
    + b"Authorization: Bearer\r\n "
    + CREDENTIAL.encode()
    + b"\r\n"
    + _JSON
    + b"\r\n"
    + _LEN
    + b"\r\n\r\n"
    + _BODY,
    # Bare LF line endings throughout.
    "bare_lf": _req(_BODY, _JSON, _LEN).replace(b"\r\n", b"\n"),
    # Bytes after a request that said Connection: close.
    "data_after_close": _req(_BODY, _JSON, _LEN, b"Connection: close") + b"GET / HTTP/1.1\r\n\r\n",
    # One header of 8 KB.
    "header_8kb": _req(_BODY, _JSON, _LEN, b"X-Pad: " + b"a" * 8192),
    # Both Content-Length and Transfer-Encoding.
    "cl_and_te": _req(b"0\r\n\r\n", _JSON, _LEN, b"Transfer-Encoding: chunked"),
    # Two different Content-Lengths.
    "two_content_lengths": _req(_BODY, _JSON, _LEN, b"Content-Length: 3"),
    # A space before the colon.
    "space_before_colon": _req(_BODY, _JSON, _LEN, b"Authorization : Bearer x"),
    # A NUL in a header value.
    "nul_in_header": _req(_BODY, _JSON, _LEN, b"X-Thing: a\x00b"),
    # Non-ASCII in the request line.
    "non_ascii_request_line": _req(
        _BODY, _JSON, _LEN, head=b"POST /v1/verif\xc3\xa9 HTTP/1.1\r\nHost: x\r\n"
    ),
    # HTTP/1.0 with a body and no Host.
    "http10_no_host": b"POST /v1/verify HTTP/1.0\r\n"
    + _AUTH
    + _JSON
    + b"\r\n"
    + _LEN
    + b"\r\n\r\n"
    + _BODY,
    # A gzip Content-Encoding on the verify route (the body is not gzip).
    "content_encoding_gzip": _req(_BODY, _JSON, _LEN, b"Content-Encoding: gzip"),
    # A head whose blank line is CR without LF, then the body.
    "cr_only_blank_line": _req(b"", _JSON, _LEN)[:-2] + b"\r" + _BODY,
    # A chunk size that is not hex.
    "bad_chunk_size": _req(
        b"zz\r\n" + _BODY + b"\r\n0\r\n\r\n", _JSON, b"Transfer-Encoding: chunked"
    ),
    # The token in the request target.
    "token_in_path": _req(
        b"", head=b"GET /v1/verify?token=" + _TOKEN + b" HTTP/1.1\r\nHost: x\r\n"
    ),
    # Pipelined: a good request, then garbage.
    "pipelined_garbage": _req(_BODY, _JSON, _LEN) + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
}


def _catalogue(token_dir: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(tokens, requests) of every catalogue row, by row name, at helpers_core.NOW."""
    import helpers_core as H
    import test_service_catalogue as cat
    from service_world import World

    real_time = time.time
    time.time = lambda: H.NOW  # the rows read the clock; stop it at NOW
    try:
        world = World(token_dir, root=H.ROOT, nhsa=H.NHSA, mohrss=H.MOHRSS)
        world.credentials[cat.HOSPITAL] = CREDENTIAL
        ctx = cat.Ctx(
            world, now=H.NOW, revoked=H.REVOKED, retired=H.VERIFY_ONLY, stranger=H.STRANGER
        )
        tokens: dict[str, bytes] = {}
        requests: dict[str, bytes] = {}
        for row in cat.ROWS:
            req = row.make(ctx)
            head, chunks = req.encode(CREDENTIAL)
            requests[row.name] = head + b"".join(chunks)
            if req.secret:
                tokens[row.name] = req.secret.encode("utf-8", "surrogateescape")
    finally:
        time.time = real_time
    return tokens, requests


def _vectors() -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(tokens, claims) of the official v4 vectors (the public ones carry a token to verify)."""
    import helpers_core as H

    tokens: dict[str, bytes] = {}
    claims: dict[str, bytes] = {}
    for case in json.loads((H.VECTORS / "v4.json").read_text("utf-8"))["tests"]:
        name = "vector-" + case["name"]
        tokens[name] = case["token"].encode()
        if case.get("payload") is not None:
            claims[name] = case["payload"].encode()
    return tokens, claims


def _claims_of(token: bytes) -> bytes | None:
    """The signed message of a well-formed v4.public token (None if it is not one)."""
    from verifier import b64url, paseto

    try:
        body, _ = paseto.split(token)
        return b64url.decode(body)[:-64] or None
    except (ValueError, paseto.PasetoError):
        return None


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cat_tokens, cat_requests = _catalogue(Path(tmp))
    vec_tokens, vec_claims = _vectors()
    good = cat_tokens["key_verify_only"]
    for sub in ("core", "http1"):
        shutil.rmtree(CORPUS / sub, ignore_errors=True)
        (CORPUS / sub).mkdir(parents=True)
    for name, token in {**cat_tokens, **vec_tokens}.items():
        (CORPUS / "core" / f"{name}.token").write_bytes(token)
        claims = vec_claims.get(name) or _claims_of(token)
        if claims:
            (CORPUS / "core" / f"{name}.claims").write_bytes(claims)
    for name, data in cat_requests.items():
        (CORPUS / "http1" / name).write_bytes(data)
    for name, data in MALFORMED.items():
        body_fixed = data.replace(_TOKEN, good)
        # keep each declared length right for the real token
        body_fixed = body_fixed.replace(
            _LEN, b"Content-Length: %d" % len(_BODY.replace(_TOKEN, good))
        )
        (CORPUS / "http1" / f"malformed-{name}").write_bytes(body_fixed)
    for name, token in vec_tokens.items():
        body = json.dumps({"token": token.decode()}).encode()
        data = _req(body, _JSON, b"Content-Length: %d" % len(body))
        (CORPUS / "http1" / name).write_bytes(data)
    counts = {sub: len(list((CORPUS / sub).iterdir())) for sub in ("core", "http1")}
    print(f"wrote {counts['core']} core and {counts['http1']} http1 seeds to {CORPUS}")


if __name__ == "__main__":
    main()
