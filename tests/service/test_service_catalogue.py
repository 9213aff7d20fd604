"""A catalogue of bad requests and bad tokens, one row each, against one running service.

Every row is sent byte for byte over its own raw socket (so that Content-Length, chunking,
missing or non-UTF-8 headers are exactly what the row says), to the real app on the real Redis.
The module fixture sends the whole table once, in order, then checks /healthz; the tests below
judge each row and then the table as a whole (no 500, JSON error bodies, documented codes, no
token or ID number echoed back).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis_server import RedisServer
from service_world import HOSPITAL, World, running

from verifier import paserk, paseto, rfc3339, tokens, trust

JSON = "application/json"
PLAIN = "text/plain"
ALICE_ID_NUMBER = "11010519491231002X"
ANSWER_TIMEOUT_S = 5.0  # every row must be answered within this, body sent or not
GOOD = object()  # stands for the valid bearer credential of the hospital's scanner


@dataclass
class Req:
    """One HTTP/1.1 request as bytes. ``parts`` > 1 is sent chunked, ``gap`` seconds apart."""

    body: bytes = b""
    ctype: str | None = JSON
    method: str = "POST"
    path: str = "/v1/verify"
    auth: object = GOOD  # GOOD, None (no header) or the header value (str or raw bytes)
    headers: Sequence[tuple[str, bytes]] = ()
    parts: Sequence[bytes] = ()
    gap: float = 0.0
    content_length: int | None = None  # a declared length; the body is then NOT sent
    secret: str | None = None  # token text the service must never echo

    def encode(self, credential: str) -> tuple[bytes, list[bytes]]:
        lines = [f"{self.method} {self.path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
        if self.auth is GOOD:
            lines.append(f"Authorization: Bearer {credential}".encode())
        elif isinstance(self.auth, str):
            lines.append(b"Authorization: " + self.auth.encode())
        elif isinstance(self.auth, bytes):
            lines.append(b"Authorization: " + self.auth)
        if self.ctype is not None:
            lines.append(f"Content-Type: {self.ctype}".encode())
        lines += [name.encode() + b": " + value for name, value in self.headers]
        lines.append(b"Connection: close")
        if self.content_length is not None:
            lines.append(f"Content-Length: {self.content_length}".encode())
            return b"\r\n".join(lines) + b"\r\n\r\n", []
        if self.parts:
            lines.append(b"Transfer-Encoding: chunked")
            chunks = [b"%x\r\n%s\r\n" % (len(p), p) for p in self.parts]
            chunks[-1] += b"0\r\n\r\n"
            return b"\r\n".join(lines) + b"\r\n\r\n", chunks
        if self.method == "POST" or self.body:
            lines.append(f"Content-Length: {len(self.body)}".encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body, []


def js(obj: object, **kw: Any) -> Req:
    return Req(body=orjson.dumps(obj), **kw)


def tok(token: str, **fields: object) -> Req:
    """``{"token": token, **fields}`` as JSON; the token must not come back in the answer."""
    return Req(body=orjson.dumps({"token": token, **fields}), secret=token)


def plain(body: bytes | str, secret: str | None = None) -> Req:
    data = body.encode() if isinstance(body, str) else body
    return Req(body=data, ctype=PLAIN, secret=secret)


@dataclass
class Ctx:
    """What rows build tokens from: the world's keys plus keys in special trust-list states."""

    world: World
    now: float = field(default_factory=time.time)
    revoked: paserk.KeyPair = field(default_factory=paserk.generate)
    early: paserk.KeyPair = field(default_factory=paserk.generate)  # not_before in 1 h
    late: paserk.KeyPair = field(default_factory=paserk.generate)  # not_after 1 h ago
    retired: paserk.KeyPair = field(default_factory=paserk.generate)  # verify-only
    stranger: paserk.KeyPair = field(default_factory=paserk.generate)  # in no list

    def trust_keys(self) -> dict[str, trust.IssuerKey]:
        cards = frozenset({"mi-voucher"})
        keys = self.world.issuer_keys()
        for pair, extra in (
            (self.revoked, {"state": "revoked"}),
            (self.early, {"not_before": self.now + 3600}),
            (self.late, {"not_after": self.now - 3600}),
            (self.retired, {"state": "verify-only"}),
        ):
            keys[pair.kid] = trust.IssuerKey(pair.kid, pair.public, "nhsa", cards, **extra)
        return keys

    @property
    def nhsa(self) -> paserk.KeyPair:
        return self.world.nhsa

    def token(self, **kw: Any) -> str:
        """A fresh, good voucher token of alice (overrides go to World.token)."""
        return self.world.token("alice", **kw)

    def mint(self, key: paserk.KeyPair, **kw: Any) -> str:
        claims: dict[str, Any] = {
            "iss": "nhsa",
            "sub": "alice",
            "card": "mi-voucher",
            "region": "110101",
            "iat": time.time(),
        }
        claims.update(kw)
        return tokens.mint(key.secret, **claims)

    def claims(self, **over: object) -> dict[str, object]:
        now = time.time()
        c: dict[str, object] = {
            "iss": "nhsa",
            "sub": "alice",
            "jti": tokens.new_jti(),
            "iat": rfc3339.format(now),
            "exp": rfc3339.format(now + 60),
            "card": "mi-voucher",
            "region": "110101",
        }
        c.update(over)
        return c

    def signed(
        self,
        payload: bytes | dict[str, object],
        key: paserk.KeyPair | None = None,
        footer: bytes | None = None,
        kid_of: paserk.KeyPair | None = None,
        implicit: bytes = b"",
    ) -> str:
        """A v4.public token over arbitrary ``payload`` and ``footer`` (default: key's kid)."""
        key = key or self.nhsa
        message = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        if footer is None:
            footer = orjson.dumps({"kid": (kid_of or key).kid})
        return paseto.sign(key.secret, message, footer, implicit)


def good_json(c: Ctx, **kw: Any) -> Req:
    """A fresh good token as ``{"token": ...}``; ``kw`` changes the rest of the request."""
    t = c.token()
    return Req(body=orjson.dumps({"token": t}), secret=t, **kw)


def json_string_token(c: Ctx) -> Req:
    t = c.token()
    return Req(body=orjson.dumps(t), secret=t)


def good_plain(c: Ctx, prefix: bytes = b"", suffix: bytes = b"", **kw: Any) -> Req:
    """A fresh good token as a text/plain body between ``prefix`` and ``suffix``."""
    t = c.token()
    kw.setdefault("ctype", PLAIN)
    return Req(body=prefix + t.encode() + suffix, secret=t, **kw)


def good_chunked(c: Ctx, ctype: str, pieces: int) -> Req:
    """A fresh good token (text/plain or JSON) sent chunked in ``pieces``, 50 ms apart."""
    t = c.token()
    data = t.encode() if ctype == PLAIN else orjson.dumps({"token": t})
    step = -(-len(data) // pieces)
    parts = [data[i : i + step] for i in range(0, len(data), step)]
    return Req(ctype=ctype, parts=parts, gap=0.05, secret=t)


def flip_body_char(token: str) -> str:
    """Change one base64url character in the middle of the signed body (stays canonical)."""
    head, rest = token[: len("v4.public.")], token[len("v4.public.") :]
    body, _, footer = rest.partition(".")
    i = len(body) // 3
    body = body[:i] + ("A" if body[i] != "A" else "B") + body[i + 1 :]
    return head + body + "." + footer


@dataclass(frozen=True)
class Row:
    name: str
    status: int
    code: str  # `error` for non-200 answers, `reason` for 200 verdicts
    make: Callable[[Ctx], Req]


# fmt: off
ROWS = [
    # --- size limits -----------------------------------------------------------------------
    # A declared body of 1 GB: refused from the headers alone (the body is never sent).
    Row("content_length_1gb_headers_only", 413, "body_too_large",
        lambda c: Req(content_length=10**9)),
    # One byte over the 8 KiB single-request limit, declared; checked before reading.
    Row("content_length_8193_headers_only", 413, "body_too_large",
        lambda c: Req(ctype=PLAIN, content_length=8193)),
    # Over the limit before authentication: even an anonymous client gets 413, not a read.
    Row("content_length_over_limit_without_auth", 413, "body_too_large",
        lambda c: Req(auth=None, content_length=10**6)),
    # A batch declaring more than its 1 MiB limit.
    Row("batch_content_length_over_limit", 413, "body_too_large",
        lambda c: Req(path="/v1/verify/batch", content_length=2 * 1048576)),
    # 10 KiB of JSON sent chunked (no Content-Length) in 1 KiB pieces.
    Row("chunked_body_over_limit", 413, "body_too_large",
        lambda c: Req(parts=[b'{"token": "' + b"A" * 1013] + [b"A" * 1024] * 9, gap=0.02)),
    # A good token sent chunked in two pieces: the service must read the whole body.
    Row("chunked_plain_token_in_two_pieces", 200, "ok", lambda c: good_chunked(c, PLAIN, 2)),
    # The same as a JSON body in three pieces.
    Row("chunked_json_in_three_pieces", 200, "ok", lambda c: good_chunked(c, JSON, 3)),
    # A token over 4 KiB inside a body under 8 KiB: a verdict, not a request error.
    Row("token_over_4kib_json", 200, "malformed",
        lambda c: tok("v4.public." + "A" * 4100)),
    # The same as text/plain.
    Row("token_over_4kib_plain", 200, "malformed",
        lambda c: plain("v4.public." + "A" * 4100)),
    # A good token padded with 4 KiB of spaces inside the JSON string.
    Row("good_token_padded_over_4kib", 200, "malformed",
        lambda c: tok(c.token() + " " * 4096)),
    # --- batches ---------------------------------------------------------------------------
    # 257 items: one over the batch limit.
    Row("batch_257_items", 400, "malformed_request",
        lambda c: js({"items": [{"token": "x"}] * 257}, path="/v1/verify/batch")),
    # No items at all.
    Row("batch_empty_items", 400, "malformed_request",
        lambda c: js({"items": []}, path="/v1/verify/batch")),
    # Items next to another top-level field.
    Row("batch_extra_field", 400, "malformed_request",
        lambda c: js({"items": [{"token": "x"}], "more": 1}, path="/v1/verify/batch")),
    # A batch is JSON only.
    Row("batch_text_plain", 415, "unsupported_media_type",
        lambda c: Req(body=b"x", ctype=PLAIN, path="/v1/verify/batch")),
    # --- content types ---------------------------------------------------------------------
    Row("content_type_text_html", 415, "unsupported_media_type",
        lambda c: Req(body=b"<p>hi</p>", ctype="text/html")),
    Row("content_type_form_urlencoded", 415, "unsupported_media_type",
        lambda c: Req(body=b"token=abc", ctype="application/x-www-form-urlencoded")),
    # No Content-Type header at all.
    Row("content_type_missing", 415, "unsupported_media_type",
        lambda c: Req(body=b'{"token": "x"}', ctype=None)),
    Row("content_type_multipart", 415, "unsupported_media_type",
        lambda c: Req(body=b'--b\r\nContent-Disposition: form-data; name="token"\r\n\r\nx\r\n--b--\r\n',
                      ctype="multipart/form-data; boundary=b")),
    # A charset parameter is fine (control row: still verified).
    Row("content_type_plain_with_charset", 200, "ok",
        lambda c: good_plain(c, ctype="text/plain; charset=utf-8")),
    # --- JSON body shape -------------------------------------------------------------------
    Row("json_invalid", 400, "malformed_request", lambda c: Req(body=b'{"token": ')),
    Row("json_array", 400, "malformed_request", lambda c: js([{"token": "x"}])),
    Row("json_number", 400, "malformed_request", lambda c: Req(body=b"42")),
    # A bare JSON string holding a good token.
    Row("json_string", 400, "malformed_request", lambda c: json_string_token(c)),
    Row("json_null", 400, "malformed_request", lambda c: Req(body=b"null")),
    Row("json_empty_body", 400, "malformed_request", lambda c: Req(body=b"")),
    # A raw (unescaped) control character inside a JSON string is not JSON.
    Row("json_raw_control_char_in_string", 400, "malformed_request",
        lambda c: Req(body=b'{"token": "v4.public.\x01abc"}')),
    # Invalid UTF-8 inside the JSON text.
    Row("json_non_utf8", 400, "malformed_request",
        lambda c: Req(body=b'{"token": "v4.public.\xff\xfe"}')),
    Row("token_number", 400, "malformed_request", lambda c: js({"token": 12345})),
    Row("token_null", 400, "malformed_request", lambda c: js({"token": None})),
    Row("token_missing", 400, "malformed_request", lambda c: js({"request_id": "r-1"})),
    Row("token_object", 400, "malformed_request", lambda c: js({"token": {"v": 4}})),
    # Unknown field carrying an ID number: refused, and the value must not be echoed.
    Row("unknown_field", 400, "malformed_request",
        lambda c: tok(c.token(), id_number=ALICE_ID_NUMBER)),
    # --- request ids -----------------------------------------------------------------------
    Row("request_id_129_chars", 400, "malformed_request",
        lambda c: tok(c.token(), request_id="r" * 129)),
    Row("request_id_with_space", 400, "malformed_request",
        lambda c: tok(c.token(), request_id="r 1")),
    Row("request_id_non_ascii", 400, "malformed_request",
        lambda c: tok(c.token(), request_id="请求-1")),
    Row("request_id_empty", 400, "malformed_request", lambda c: tok(c.token(), request_id="")),
    Row("request_id_number", 400, "malformed_request", lambda c: tok(c.token(), request_id=7)),
    # The Idempotency-Key header follows the same rule; a tab is legal HTTP but not an id.
    Row("idempotency_key_with_tab", 400, "malformed_request",
        lambda c: good_plain(c, headers=[("Idempotency-Key", b"k\t1")])),
    # Non-ASCII (UTF-8) bytes in the Idempotency-Key header.
    Row("idempotency_key_non_ascii", 400, "malformed_request",
        lambda c: good_plain(c, headers=[("Idempotency-Key", "键".encode())])),
    # --- service and amount ----------------------------------------------------------------
    Row("service_without_amount", 400, "malformed_request",
        lambda c: tok(c.token(), service="inpatient")),
    Row("amount_without_service", 400, "malformed_request",
        lambda c: tok(c.token(), amount="10.00")),
    Row("service_unknown", 400, "malformed_request",
        lambda c: tok(c.token(), service="dentistry", amount="10.00")),
    Row("amount_negative", 400, "malformed_request",
        lambda c: tok(c.token(), service="inpatient", amount="-1.00")),
    # A JSON number, even a harmless-looking one: money is a decimal string.
    Row("amount_float_number", 400, "malformed_request",
        lambda c: tok(c.token(), service="inpatient", amount=12.5)),
    Row("amount_exponent", 400, "malformed_request",
        lambda c: tok(c.token(), service="inpatient", amount="1e3")),
    Row("amount_three_decimals", 400, "malformed_request",
        lambda c: tok(c.token(), service="inpatient", amount="1.234")),
    Row("amount_fullwidth_digits", 400, "malformed_request",
        lambda c: tok(c.token(), service="inpatient", amount="１２")),
    Row("amount_above_1e12_yuan", 400, "malformed_request",
        lambda c: tok(c.token(), service="inpatient", amount="1000000000000.01")),
    # --- NUL, control characters, non-UTF-8 inside the token --------------------------------
    # A good token with a NUL appended (JSON escape): no longer the signed text.
    Row("token_nul_appended_json", 200, "malformed", lambda c: tok(c.token() + "\x00")),
    # A NUL in the middle of the body segment.
    Row("token_nul_inside_json", 200, "malformed",
        lambda c: tok(c.token().replace("v4.public.", "v4.public.\x00"))),
    # JSON does not trim: a trailing newline inside the token string is part of the token.
    Row("token_newline_appended_json", 200, "malformed", lambda c: tok(c.token() + "\n")),
    Row("token_escape_sequence_json", 200, "malformed",
        lambda c: tok("\x1b[31m" + c.token())),
    # Non-ASCII text in a JSON token.
    Row("token_non_ascii_json", 200, "malformed", lambda c: tok("v4.public.ünïcödé")),
    # text/plain: a NUL byte after the token.
    Row("plain_nul_byte", 200, "malformed", lambda c: good_plain(c, suffix=b"\x00")),
    # text/plain: control characters before the token.
    Row("plain_control_chars", 200, "malformed", lambda c: good_plain(c, prefix=b"\x07\x1b")),
    # text/plain: bytes that are not UTF-8.
    Row("plain_non_utf8", 200, "malformed", lambda c: plain(b"v4.public.\xff\xfe\xfd")),
    # text/plain: surrounding whitespace and CRLF are trimmed (control row).
    Row("plain_crlf_trimmed", 200, "ok", lambda c: good_plain(c, prefix=b" ", suffix=b"\r\n")),
    # --- token core: malformed and unsupported ---------------------------------------------
    Row("not_paseto", 200, "malformed", lambda c: tok("hello")),
    Row("empty_token", 200, "malformed", lambda c: tok("")),
    Row("header_only", 200, "malformed", lambda c: tok("v4.public.")),
    Row("v2_local", 200, "unsupported_token", lambda c: tok("v2.local." + "A" * 80)),
    Row("v3_public", 200, "unsupported_token", lambda c: tok("v3.public." + "A" * 80)),
    Row("v4_local", 200, "unsupported_token", lambda c: tok("v4.local." + "A" * 80)),
    # Three segments after the header.
    Row("too_many_segments", 200, "malformed", lambda c: tok(c.token() + ".eyJ9")),
    # Standard-base64 padding after the footer.
    Row("base64_padding", 200, "malformed", lambda c: tok(c.token() + "==")),
    # Signed correctly but with no footer: the key cannot be chosen.
    Row("no_footer", 200, "malformed", lambda c: tok(c.signed(c.claims(), footer=b""))),
    Row("footer_not_json", 200, "malformed", lambda c: tok(c.signed(c.claims(), footer=b"kid"))),
    Row("footer_kid_not_string", 200, "malformed",
        lambda c: tok(c.signed(c.claims(), footer=b'{"kid": 1}'))),
    # Only {"kid"} is allowed in the footer.
    Row("footer_extra_key", 200, "malformed",
        lambda c: tok(c.signed(c.claims(), footer=orjson.dumps({"kid": c.nhsa.kid, "x": 1})))),
    Row("footer_too_long", 200, "malformed",
        lambda c: tok(c.signed(c.claims(), footer=orjson.dumps({"kid": "k" * 600})))),
    # --- token core: keys ------------------------------------------------------------------
    Row("unknown_key", 200, "unknown_key", lambda c: tok(c.mint(c.stranger))),
    # A trust list is a signed token too, but its root key issues no QR codes.
    Row("trust_list_as_token", 200, "unknown_key",
        lambda c: tok((c.world.dir / "trust.paseto").read_text().strip())),
    Row("key_revoked", 200, "key_revoked", lambda c: tok(c.mint(c.revoked))),
    Row("key_not_yet_valid", 200, "key_not_valid", lambda c: tok(c.mint(c.early))),
    Row("key_no_longer_valid", 200, "key_not_valid", lambda c: tok(c.mint(c.late))),
    # A verify-only (retired) key still verifies what it signed (control row).
    Row("key_verify_only", 200, "ok", lambda c: tok(c.mint(c.retired))),
    # --- token core: signature -------------------------------------------------------------
    # Signed by a stranger, footer naming the trusted nhsa key.
    Row("bad_signature_wrong_key", 200, "bad_signature",
        lambda c: tok(c.signed(c.claims(), key=c.stranger, kid_of=c.nhsa))),
    # One base64url character of the signed body changed.
    Row("bad_signature_flipped_char", 200, "bad_signature",
        lambda c: tok(flip_body_char(c.token()))),
    # Signed with an implicit assertion the verifier does not use.
    Row("bad_signature_implicit_assertion", 200, "bad_signature",
        lambda c: tok(c.signed(c.claims(), implicit=b"other-deployment"))),
    # --- token core: claims ----------------------------------------------------------------
    Row("claims_not_json", 200, "invalid_claims", lambda c: tok(c.signed(b"not json"))),
    Row("claims_json_array", 200, "invalid_claims", lambda c: tok(c.signed(b"[1, 2]"))),
    Row("claims_duplicate_sub", 200, "invalid_claims",
        lambda c: tok(c.signed(orjson.dumps(c.claims())[:-1] + b',"sub":"bob"}'))),
    Row("claims_jti_too_short", 200, "invalid_claims",
        lambda c: tok(c.signed(c.claims(jti="short")))),
    # Braces in sub would break the Redis hash tag: refused by the core.
    Row("claims_sub_with_braces", 200, "invalid_claims",
        lambda c: tok(c.signed(c.claims(sub="al{ice}")))),
    Row("claims_region_five_digits", 200, "invalid_claims",
        lambda c: tok(c.signed(c.claims(region="11010")))),
    Row("claims_unknown_card_type", 200, "invalid_claims",
        lambda c: tok(c.signed(c.claims(card="gold-card")))),
    # A card that is not even a string (a list): a verdict, never a crash.
    Row("claims_card_is_a_list", 200, "invalid_claims",
        lambda c: tok(c.signed(c.claims(card=["mi-voucher"])))),
    Row("claims_iat_unix_number", 200, "invalid_claims",
        lambda c: tok(c.signed(c.claims(iat=int(time.time()))))),
    Row("claims_exp_before_iat", 200, "invalid_claims",
        lambda c: tok(c.signed(c.claims(exp=rfc3339.format(time.time() - 10))))),
    Row("claims_missing_exp", 200, "invalid_claims",
        lambda c: tok(c.signed({k: v for k, v in c.claims().items() if k != "exp"}))),
    # --- token core: time ------------------------------------------------------------------
    # Expired 140 s ago: far beyond the 30 s leeway.
    Row("expired", 200, "expired", lambda c: tok(c.token(iat=time.time() - 200))),
    # Expired 40 s ago: 10 s beyond the leeway.
    Row("expired_beyond_leeway", 200, "expired", lambda c: tok(c.token(iat=time.time() - 100))),
    # Expired about 20 s ago: inside the leeway (control row).
    Row("expired_within_leeway", 200, "ok", lambda c: tok(c.token(iat=time.time() - 80))),
    Row("not_yet_valid", 200, "not_yet_valid", lambda c: tok(c.token(nbf=time.time() + 60))),
    Row("issued_in_future", 200, "issued_in_future",
        lambda c: tok(c.token(iat=time.time() + 60))),
    Row("lifetime_too_long", 200, "lifetime_too_long", lambda c: tok(c.token(ttl=301))),
    # --- token core: issuer and card -------------------------------------------------------
    # The nhsa key may sign vouchers only.
    Row("card_not_allowed_for_key", 200, "card_not_allowed",
        lambda c: tok(c.mint(c.nhsa, card="ss-ecard"))),
    # The nhsa key signing as another issuer.
    Row("issuer_mismatch", 200, "card_not_allowed", lambda c: tok(c.mint(c.nhsa, iss="mohrss"))),
    # --- methods, paths, credentials -------------------------------------------------------
    Row("get_verify", 405, "method_not_allowed", lambda c: Req(method="GET", ctype=None)),
    Row("put_verify", 405, "method_not_allowed", lambda c: js({"token": "x"}, method="PUT")),
    Row("delete_batch", 405, "method_not_allowed",
        lambda c: Req(method="DELETE", path="/v1/verify/batch", ctype=None)),
    Row("post_healthz", 405, "method_not_allowed", lambda c: js({}, path="/healthz")),
    Row("unknown_path", 404, "not_found", lambda c: js({"token": "x"}, path="/v2/verify")),
    Row("trailing_slash", 404, "not_found", lambda c: js({"token": "x"}, path="/v1/verify/")),
    Row("missing_authorization", 401, "unauthorized", lambda c: good_json(c, auth=None)),
    Row("garbled_authorization", 401, "unauthorized",
        lambda c: good_json(c, auth="Bearer garbage")),
    Row("basic_authorization", 401, "unauthorized",
        lambda c: good_json(c, auth="Basic dXNlcjpwYXNz")),
    # Well-formed credential of a scanner that does not exist.
    Row("unknown_scanner", 401, "unauthorized",
        lambda c: good_json(c, auth="Bearer s-000000000000." + "x" * 43)),
    # The right credential with a byte appended.
    Row("credential_with_extra_byte", 401, "unauthorized",
        lambda c: good_json(c, auth=f"Bearer {c.world.credentials[HOSPITAL]}x")),
    # Latin-1 bytes in the header.
    Row("authorization_non_utf8", 401, "unauthorized",
        lambda c: good_json(c, auth=b"Bearer \xff\xfe" + b"x" * 40)),
    # Last, because it breaks verification for everyone until a fresh list is loaded: an
    # expired trust list in force (see the fixture) is a 503, not a verdict.
    Row("trust_list_expired", 503, "trust_list_expired", lambda c: tok(c.token())),
]
# fmt: on


@dataclass
class Answer:
    status: int
    head: bytes  # status line and headers, raw
    headers: dict[str, str]  # lower-case names
    body: bytes
    doc: Any  # parsed JSON body, or None
    secret: str | None  # the token text sent, if any
    method: str = "POST"
    path: str = "/v1/verify"
    error: str | None = None  # transport problem (no answer)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await (reader.readexactly(length) if length is not None else reader.read())
    return head, body


async def exchange(port: int, req: Req, credential: str) -> Answer:
    head, chunks = req.encode(credential)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        try:
            writer.write(head)
            await writer.drain()
            for n, chunk in enumerate(chunks):
                if n:
                    await asyncio.sleep(req.gap)
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass  # the server may answer (and close) before it has everything; read it
        try:
            raw_head, body = await asyncio.wait_for(_read_answer(reader), ANSWER_TIMEOUT_S)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as err:
            problem = f"{type(err).__name__}: {err}"
            return Answer(0, b"", {}, b"", None, req.secret, req.method, req.path, problem)
    finally:
        writer.close()
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
    }
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    return Answer(status, raw_head, headers, body, doc, req.secret, req.method, req.path)


@dataclass
class Catalogue:
    answers: dict[str, Answer]
    healthz_after: int
    tokens_sent: list[str]

    def __repr__(self) -> str:  # keeps pytest's failure output readable
        return f"<Catalogue of {len(self.answers)} answers>"


def _run_catalogue(world: World, store_url: str) -> Catalogue:
    async def main() -> Catalogue:
        async with running(world, store_url, store_deadline_ms=1000) as svc:
            ctx = Ctx(world)
            world.write_trust(version=2, keys=ctx.trust_keys())
            assert svc.runtime.trust.reload() is True
            port = int(svc.url.rsplit(":", 1)[1])
            credential = world.credentials[HOSPITAL]
            answers: dict[str, Answer] = {}
            sent: list[str] = []
            for row in ROWS:
                if row.name == "trust_list_expired":
                    # A list valid for one more second, in force; then wait until it expires.
                    world.write_trust(version=3, keys=ctx.trust_keys(), ttl=2)
                    assert svc.runtime.trust.reload() is True
                    await asyncio.sleep(max(0.0, svc.runtime.trust.current.exp - time.time()))
                    await asyncio.sleep(0.05)
                req = row.make(ctx)
                assert isinstance(req, Req), row.name
                if req.secret:
                    sent.append(req.secret)
                answers[row.name] = await exchange(port, req, credential)
            async with svc.http.get(svc.url + "/healthz") as r:
                healthz = r.status
            # Leave the service usable again (and prove a fresh list is taken after expiry).
            world.write_trust(version=4, keys=ctx.trust_keys())
            assert svc.runtime.trust.reload() is True
            return Catalogue(answers, healthz, sent)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def catalogue(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Catalogue]:
    """The whole table, sent once, in order, to one service on the session's Redis."""
    redis_server.ensure_running()
    client = redis_server.client()
    try:
        client.flushall()
        client.config_set("maxmemory-policy", "noeviction")
    finally:
        client.close()
    yield _run_catalogue(World(tmp_path_factory.mktemp("catalogue")), redis_server.url)


def test_the_table_is_big_enough():
    names = [row.name for row in ROWS]
    assert len(names) == len(set(names)), "row names must be unique"
    assert len(ROWS) >= 40


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_row(catalogue: Catalogue, row: Row):
    a = catalogue.answers[row.name]
    assert a.error is None, f"no HTTP answer: {a.error}"
    shown = a.body[:300]
    assert a.status == row.status, f"expected {row.status} {row.code}, got {a.status}: {shown!r}"
    assert isinstance(a.doc, dict), f"body is not a JSON object: {shown!r}"
    if row.status == 200:
        assert a.doc.get("reason") == row.code, shown
        assert a.doc.get("valid") is (row.code == "ok"), shown
        assert a.doc.get("covered") is (row.code == "ok"), shown
    else:
        assert a.doc.get("error") == row.code, shown
    if row.status == 401:
        assert a.headers.get("www-authenticate", "").startswith("Bearer")
    if row.status == 503:
        assert a.headers.get("retry-after"), "a 503 says when to retry"


def test_service_stayed_up_and_never_answered_500(catalogue: Catalogue):
    assert catalogue.healthz_after == 200
    crashed = {name: a.body[:120] for name, a in catalogue.answers.items() if a.status >= 500}
    crashed.pop("trust_list_expired", None)  # the one 503 the table asks for
    assert crashed == {}
    lost = {name: a.error for name, a in catalogue.answers.items() if a.error}
    assert lost == {}


def test_every_refusal_is_a_json_error_and_message(catalogue: Catalogue):
    bad = {}
    for name, a in catalogue.answers.items():
        if a.status == 200 or a.error:
            continue
        doc = a.doc
        ok_shape = (
            isinstance(doc, dict)
            and set(doc) == {"error", "message"}
            and isinstance(doc["error"], str)
            and isinstance(doc["message"], str)
            and a.headers.get("content-type", "").startswith(JSON)
        )
        if not ok_shape:
            bad[name] = (a.status, a.headers.get("content-type"), a.body[:120])
    assert bad == {}


def _openapi() -> dict[str, Any]:
    doc = orjson.loads(resources.files("verifier.service").joinpath("openapi.json").read_bytes())
    assert isinstance(doc, dict)
    return doc


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow local ``$ref`` pointers ("#/components/...") until a node without one."""
    for _ in range(20):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            return node
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    raise AssertionError("$ref cycle in openapi.json")


def _enums_of(doc: dict[str, Any], node: Any, field: str) -> set[str]:
    """Strings in the ``enum`` of every ``properties.<field>`` below ``node`` ($refs followed)."""
    found: set[str] = set()
    seen: set[int] = set()

    def walk(n: Any) -> None:
        n = _resolve(doc, n)
        if id(n) in seen:
            return
        seen.add(id(n))
        if isinstance(n, dict):
            props = n.get("properties")
            if isinstance(props, dict) and field in props:
                spec = _resolve(doc, props[field])
                for alt in [spec, *spec.get("oneOf", []), *spec.get("anyOf", [])]:
                    enum = _resolve(doc, alt).get("enum", [])
                    found.update(v for v in enum if isinstance(v, str))
            for value in n.values():
                walk(value)
        elif isinstance(n, list):
            for value in n:
                walk(value)

    walk(node)
    return found


def test_every_code_seen_is_documented_in_openapi(catalogue: Catalogue):
    """Each `error` / `reason` answered is in an enum of that property in openapi.json."""
    doc = _openapi()
    errors, reasons = _enums_of(doc, doc, "error"), _enums_of(doc, doc, "reason")
    assert errors and reasons, "openapi.json documents no error or reason codes"
    undocumented = []
    for name, a in catalogue.answers.items():
        if not isinstance(a.doc, dict):
            continue
        field, known = ("reason", reasons) if a.status == 200 else ("error", errors)
        if a.doc.get(field) not in known:
            undocumented.append((name, a.status, a.doc.get(field)))
    assert undocumented == []


def test_every_status_of_a_verify_endpoint_is_documented_for_it(catalogue: Catalogue):
    """POST /v1/verify and /v1/verify/batch: each status (and its error) under that operation."""
    doc = _openapi()
    missing: list[tuple[str, int, object]] = []
    for name, a in catalogue.answers.items():
        if a.error or not isinstance(a.doc, dict) or a.method != "POST":
            continue
        if a.path not in ("/v1/verify", "/v1/verify/batch"):
            continue
        responses = _resolve(doc, doc["paths"][a.path]["post"].get("responses", {}))
        answer = _resolve(doc, responses.get(str(a.status)))
        if answer is None:
            missing.append((name, a.status, "status not documented"))
        elif a.status != 200 and a.doc.get("error") not in _enums_of(doc, answer, "error"):
            missing.append((name, a.status, a.doc.get("error")))
    assert missing == []


def test_no_answer_echoes_a_token_or_an_id_number(catalogue: Catalogue):
    secrets = [s for s in catalogue.tokens_sent if len(s) >= 40]
    assert len(secrets) > 40  # the check below must have something to look for
    leaks = []
    for name, a in catalogue.answers.items():
        text = a.head + a.body
        if ALICE_ID_NUMBER.encode() in text:
            leaks.append((name, "id number"))
        for s in secrets:
            # Any long piece of a token (e.g. its signed body) counts as an echo too.
            if s.encode() in text or s[10:50].encode() in text:
                leaks.append((name, s[:30]))
    assert leaks == []


def test_documented_codes_reader_sees_the_served_document():
    # The enum reader above reads the packaged file; the service serves the same bytes.
    from verifier.service.endpoint import OPENAPI

    path = Path(str(resources.files("verifier.service").joinpath("openapi.json")))
    assert path.read_bytes() == OPENAPI
