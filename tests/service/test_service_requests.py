"""The request rules of the endpoint, each against the published API document.

One test (or property) per defect found: an explicit ``null`` against the ``Idempotency-Key``
header, duplicate keys, 405 without ``Allow``, batch items and amounts the document and the
service judged differently, an evicting Redis not noticed while running, a bad store URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from importlib import resources
from typing import Any

import jsonschema_rs
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_process import free_port, run_verifier, world_env
from service_world import HOSPITAL, Service, World, running

from verifier.errors import RequestRefused
from verifier.service import requests as R
from verifier.store import redis as redis_store
from verifier.strictjson import JSONError, loads_unique

DOC: dict[str, Any] = json.loads(
    resources.files("verifier.service").joinpath("openapi.json").read_text("utf-8")
)
SCHEMAS = DOC["components"]["schemas"]


def schema(name: str) -> dict[str, Any]:
    """A component schema that resolves its ``$ref``s against the document."""
    return {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]}


def conforms(value: object, name: str) -> bool:
    return jsonschema_rs.Draft202012Validator(schema(name)).is_valid(value)


def ecma_fullmatch(pattern: str, text: str) -> bool:
    """JSON Schema's ``pattern`` (ECMA-262: ``$`` is only the very end) on ``text``."""
    return re.search(pattern.replace("$", r"\Z"), text) is not None


def accepted(obj: object) -> bool:
    try:
        R.request_from_json(obj)
    except RequestRefused as err:
        assert err.code == "malformed_request"
        return False
    return True


def run(world: World, scenario: Any, store_url: str = "memory://", **extra: Any) -> None:
    async def body() -> None:
        async with running(world, store_url, **extra) as svc:
            await scenario(svc)

    asyncio.run(body())


async def post_raw(svc: Service, body: bytes, path: str = "/v1/verify") -> tuple[int, Any]:
    headers = {
        "Authorization": f"Bearer {svc.world.credentials[HOSPITAL]}",
        "Content-Type": "application/json",
    }
    async with svc.http.post(svc.url + path, data=body, headers=headers) as resp:
        return resp.status, orjson.loads(await resp.read())


# -- request_id: null against the Idempotency-Key header ------------------------------------


def test_a_null_request_id_is_refused_not_taken_over_the_header(tmp_path):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        token = world.token()
        body = {"token": token, "request_id": None}
        header = {"Idempotency-Key": "pos-7-000123"}
        first = await svc.verify(json=body, headers=header)
        # Before: 200 "ok" without the header's id, and the identical retry got "replayed".
        assert (first[0], first[1]["error"]) == (400, "malformed_request")
        assert "Idempotency-Key" in first[1]["message"]
        # The token was not looked at: the same scan without the null is answered, and its
        # identical retry (the header's id) gets the original verdict.
        status, doc = await svc.verify(json={"token": token}, headers=header)
        assert (status, doc["reason"], doc["request_id"]) == (200, "ok", "pos-7-000123")
        status, doc = await svc.verify(json={"token": token}, headers=header)
        assert (status, doc["reason"]) == (200, "ok")

    run(world, scenario)


@pytest.mark.parametrize("field", ["request_id", "service", "amount"])
def test_null_is_no_value_for_any_optional_field(field):
    body = {"token": "v4.public.x", "service": "inpatient", "amount": "1.00", field: None}
    assert not accepted(body)
    assert not conforms(body, "VerifyRequest")


# -- duplicate keys ----------------------------------------------------------------------------


def test_a_repeated_key_is_refused_not_last_wins(tmp_path):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        first, second = world.token("alice"), world.token("bob")
        body = b'{"token": "%s", "token": "%s"}' % (first.encode(), second.encode())
        status, doc = await post_raw(svc, body)
        # Before: 200, the second token verified.
        assert (status, doc["error"]) == (400, "malformed_request")
        assert "duplicate" in doc["message"]
        # Neither token was used: each is still "ok" on its own.
        for token in (first, second):
            status, doc = await svc.verify(token)
            assert (status, doc["reason"]) == (200, "ok")
        # In a batch item too: the whole body is not acceptable JSON.
        batch = b'{"items": [{"token": "a", "request_id": "r-1", "request_id": "r-2"}]}'
        status, doc = await post_raw(svc, batch, "/v1/verify/batch")
        assert (status, doc["error"]) == (400, "malformed_request")

    run(world, scenario)


def _reference(text: bytes) -> object:
    """The exact reader: the standard library with a hook that refuses a repeated key."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise JSONError("duplicate keys")
        return dict(pairs)

    orjson.loads(text)  # the same grammar as the service (raises what it refuses)
    return json.loads(text, object_pairs_hook=no_duplicates)


# Keys and strings that stress the colon count: colons, \u escapes spelling a colon or a quote.
_KEYS = st.sampled_from(["token", "request_id", "a", "a:b", ":", "\\u003a", "k\\u0022", "é"])
_SCALARS = st.one_of(
    st.sampled_from(['"v4.public.x"', '"x:y"', '":"', '"\\u003a"', "1", "-2.5e3", "true", "null"]),
    st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)),
)


def _objects(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(_KEYS, values), max_size=5)
    return pairs.map(lambda ps: "{" + ", ".join(f'"{k}" :{v}' for k, v in ps) + "}")


_JSON_TEXT = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        _objects(inner), st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]")
    ),
    max_leaves=12,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON_TEXT)
def test_the_request_reader_accepts_exactly_what_the_exact_reader_accepts(text: str) -> None:
    data = text.encode()
    try:
        expected: object = _reference(data)
    except ValueError:  # orjson.JSONDecodeError, json.JSONDecodeError, JSONError
        expected = JSONError
    try:
        got: object = loads_unique(data)
    except JSONError:
        got = JSONError
    assert got == expected
    try:
        via_request: object = R.loads(data)
    except RequestRefused:
        via_request = JSONError
    assert via_request == expected


def test_deep_nesting_is_refused_or_read_never_a_crash():
    for depth in (200, 300, 1000):
        for text in (
            b"[" * depth + b"]" * depth,
            b'{"\\u0061":' + b"[" * depth + b"]" * depth + b"}",
        ):
            try:
                loads_unique(text)
            except JSONError:
                pass


# -- 405 names what is allowed -----------------------------------------------------------------


def test_405_carries_allow(tmp_path):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        for method, path, allow in (
            ("GET", "/v1/verify", "POST"),
            ("DELETE", "/v1/verify/batch", "POST"),
            ("POST", "/healthz", "GET"),
            ("PUT", "/readyz", "GET"),
            ("POST", "/openapi.json", "GET"),
            ("GET", "/v1/reconcile", "POST"),
        ):
            async with svc.http.request(method, svc.url + path) as resp:
                doc = await resp.json()
                # Before: no Allow header.
                assert (resp.status, doc["error"]) == (405, "method_not_allowed"), path
                assert resp.headers.get("Allow") == allow, (method, path)

    run(world, scenario)


# -- amounts: exactly the document's pattern ---------------------------------------------------

MONEY = SCHEMAS["Money"]["pattern"]


@settings(max_examples=1000, deadline=None)
@given(st.from_regex(MONEY.replace("$", r"\Z"), fullmatch=True))
def test_every_amount_the_document_admits_is_accepted(amount: str) -> None:
    # Before: the pattern admitted any number of digits; over 10^12 yuan was a 400.
    assert accepted({"token": "t", "service": "inpatient", "amount": amount})


_AMOUNTISH = st.one_of(
    st.text(alphabet="0123456789.", max_size=18),
    st.text(max_size=6),
    st.integers(0, 10**15).map(str),
    st.sampled_from(["1000000000000", "1000000000000.0", "1000000000000.00", "1000000000000.01"]),
    st.sampled_from(["999999999999.99", "0.5", "00", "1.", ".5", "1\n", "١٢", "+1", "1e3"]),
)


@settings(max_examples=2000, deadline=None)
@given(_AMOUNTISH)
def test_the_service_accepts_exactly_the_amounts_the_document_admits(amount: str) -> None:
    item = {"token": "t", "service": "inpatient", "amount": amount}
    assert accepted(item) == ecma_fullmatch(MONEY, amount) == conforms(item, "VerifyRequest")


# -- batch items: the document and the service agree -------------------------------------------

_ITEM_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from(["v4.public.x", "inpatient", "1.00", "", " ", "x" * 129, "10000000000000"]),
    st.text(max_size=4),
)
_ITEMS = st.one_of(
    st.dictionaries(
        st.sampled_from(["token", "request_id", "service", "amount", "other"]), _ITEM_VALUES
    ),
    _ITEM_VALUES,
    st.lists(_ITEM_VALUES, max_size=2),
)


@settings(max_examples=2000, deadline=None)
@given(_ITEMS)
def test_an_item_is_accepted_exactly_when_it_is_a_verify_request(item: object) -> None:
    assert accepted(item) == conforms(item, "VerifyRequest")


def test_batch_items_that_break_the_schema_get_their_own_errors_as_documented(tmp_path):
    world = World(tmp_path)
    bad_items: list[object] = [
        {"tok": "x"},
        {"token": 1},
        {"token": "t", "request_id": None},
        {"token": "t", "service": "inpatient"},
        {"token": "t", "service": "inpatient", "amount": "10000000000000"},
        "v4.public.x",
        [],
        None,
    ]

    async def scenario(svc: Service) -> None:
        good = {"token": world.token(), "request_id": "b-1"}
        body = {"items": [good, *bad_items]}
        # The document admits this body (each item is a VerifyRequest or another value)...
        assert conforms(body, "BatchRequest")
        status, doc = await svc.verify(json=body, path="/v1/verify/batch")
        # ... and the service answers it with 200: a verdict, then one error per bad item.
        assert status == 200
        results = doc["results"]
        assert results[0]["reason"] == "ok"
        assert [r.get("error") for r in results[1:]] == ["malformed_request"] * len(bad_items)
        for result in results[1:]:
            assert conforms(result, "BatchItemError")
        assert conforms({"results": results}, "BatchResponse")

    run(world, scenario)


# -- an evicting Redis is noticed while running ------------------------------------------------


@pytest.mark.parametrize("allow_eviction", [False, True])
def test_a_policy_switched_to_evicting_makes_the_service_not_ready(
    tmp_path, redis_server, redis_url, monkeypatch, caplog, allow_eviction
):
    monkeypatch.setattr(redis_store, "EVICTION_RECHECK_SECONDS", 0.0)
    world = World(tmp_path)
    client = redis_server.client()

    async def ready(svc: Service) -> tuple[int, list[str]]:
        async with svc.http.get(svc.url + "/readyz") as resp:
            return resp.status, (await resp.json())["problems"]

    async def scenario(svc: Service) -> None:
        assert await ready(svc) == (200, [])
        client.config_set("maxmemory-policy", "allkeys-lru")
        with caplog.at_level(logging.WARNING, logger="verifier.store.redis"):
            for _ in range(3):
                got = await ready(svc)
                # Before: 200, never re-read.
                if allow_eviction:
                    assert got == (200, [])
                else:
                    assert got == (503, ["store may evict nonces"])
            logged = [r for r in caplog.records if "allkeys-lru" in r.getMessage()]
            assert len(logged) == (0 if allow_eviction else 1)  # once, not once per probe
            client.config_set("maxmemory-policy", "noeviction")
            assert await ready(svc) == (200, [])

    try:
        run(world, scenario, redis_url, allow_eviction=allow_eviction)
    finally:
        client.config_set("maxmemory-policy", "noeviction")


def test_the_policy_is_read_again_at_most_every_few_seconds():
    assert 1.0 <= redis_store.EVICTION_RECHECK_SECONDS <= 10.0


# -- a store URL that cannot be dialled --------------------------------------------------------


@pytest.mark.parametrize(
    "url, says",
    [
        ("redis://127.0.0.1:99999/0", "port must be a number from 1 to 65535"),
        ("redis://127.0.0.1:0/0", "port must be a number from 1 to 65535"),
        ("redis://:secret@127.0.0.1:6379/zero", "database"),
    ],
)
def test_a_bad_store_url_is_one_line_and_a_failed_start(tmp_path, url, says):
    world = World(tmp_path)
    done = run_verifier(["serve"], world_env(world, url, free_port()), timeout=30)
    # Before: a 41-line traceback for the port.
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert says in done.stderr and "VERIFIER_STORE" in done.stderr
    assert "secret" not in done.stderr
