"""The published API document: OpenAPI 3.1 shaped, complete, and in step with the code."""

from __future__ import annotations

import asyncio
import json
import re
from importlib import resources
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from verifier.errors import ALL_REASONS, REFUSAL_STATUS
from verifier.service.app import build_app
from verifier.service.endpoint import OPENAPI, Runtime
from verifier.service.metrics import Metrics
from verifier.service.requests import MAX_BATCH_ITEMS
from verifier.store import MemoryStore

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    text = resources.files("verifier.service").joinpath("openapi.json").read_text("utf-8")
    loaded = json.loads(text)
    assert isinstance(loaded, dict)
    return loaded


def dummy_app() -> web.Application:
    """The real route table; the handlers that need trust, pipeline or scanners are not called."""
    none = cast(Any, None)
    return build_app(Runtime(MemoryStore(), none, none, none, Metrics()))


def routes(app: web.Application) -> set[tuple[str, str]]:
    """(path, lower-case method) of every route but the catch-alls (404, 405)."""
    found = set()
    for resource in app.router.resources():
        path = resource.canonical
        if "{" in path:  # the not-found catch-all
            continue
        for route in resource:
            if route.method != "*":
                found.add((path, route.method.lower()))
    return found


def refs(node: object) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return out + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), ref
    node: object = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


# -- shape ------------------------------------------------------------------------------------


def test_is_openapi_3_1_shaped(doc: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.1\.[0-9]+", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["paths"] and doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        operations = {k: v for k, v in item.items() if k in HTTP_METHODS}
        assert operations, path
        for method, op in operations.items():
            assert op["responses"], (path, method)
            for status in op["responses"]:
                assert re.fullmatch(r"[1-5][0-9]{2}|default", status), (path, method, status)


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    all_refs = refs(doc)
    assert all_refs
    for ref in all_refs:
        resolve(doc, ref)


def test_operation_ids_are_unique(doc: dict[str, Any]) -> None:
    ids = [
        op["operationId"]
        for item in doc["paths"].values()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]
    assert len(ids) == len(set(ids))


def test_served_document_is_this_file(doc: dict[str, Any]) -> None:
    assert json.loads(OPENAPI) == doc


# -- reason codes -----------------------------------------------------------------------------


def test_reason_enum_is_exactly_all_reasons(doc: dict[str, Any]) -> None:
    enum = doc["components"]["schemas"]["ReasonCode"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == ALL_REASONS


@pytest.mark.parametrize("reason", sorted(ALL_REASONS))
def test_every_reason_is_described(doc: dict[str, Any], reason: str) -> None:
    schema = doc["components"]["schemas"]["ReasonCode"]
    assert f"- `{reason}`: " in schema["description"]
    assert len(schema["x-enum-descriptions"][reason]) > 40


def test_verdict_uses_the_reason_codes(doc: dict[str, Any]) -> None:
    verdict = doc["components"]["schemas"]["Verdict"]
    assert verdict["properties"]["reason"] == {"$ref": "#/components/schemas/ReasonCode"}
    assert {"valid", "reason", "covered"} <= set(verdict["required"])
    for part in ("card", "holder", "coverage", "settlement", "request_id"):
        assert part in verdict["properties"]


# -- error codes ------------------------------------------------------------------------------


def error_codes_in_source() -> set[str]:
    """The refusal codes the service can send: every one is a key of REFUSAL_STATUS."""
    return set(REFUSAL_STATUS)


def test_error_enum_matches_the_codes_the_service_sends(doc: dict[str, Any]) -> None:
    in_source = error_codes_in_source()
    assert {"malformed_request", "unauthorized", "store_unavailable"} <= in_source
    enum = doc["components"]["schemas"]["ErrorCode"]["enum"]
    assert set(enum) == in_source
    for code in enum:
        assert f"- `{code}`: " in doc["components"]["schemas"]["ErrorCode"]["description"]


def test_verify_documents_its_statuses_and_headers(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/v1/verify"]["post"]
    assert {"200", "400", "401", "403", "413", "415", "503"} <= set(op["responses"])
    assert set(op["requestBody"]["content"]) == {"application/json", "text/plain"}
    assert "Server-Timing" in op["responses"]["200"]["headers"]
    assert "Retry-After" in op["responses"]["503"]["headers"]
    params = [resolve(doc, p["$ref"]) if "$ref" in p else p for p in op["parameters"]]
    assert any(cast(dict, p)["name"] == "Idempotency-Key" for p in params)
    assert op["security"] == [{"scannerCredential": []}]
    assert doc["components"]["securitySchemes"]["scannerCredential"]["scheme"] == "bearer"


def test_batch_limit_matches_the_code(doc: dict[str, Any]) -> None:
    items = doc["components"]["schemas"]["BatchRequest"]["properties"]["items"]
    assert items["maxItems"] == MAX_BATCH_ITEMS
    assert items["minItems"] == 1


# -- routes -----------------------------------------------------------------------------------


def test_every_route_is_documented_and_every_path_is_routed(doc: dict[str, Any]) -> None:
    registered = routes(dummy_app())
    assert ("/v1/verify", "post") in registered
    documented = {
        (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert registered == documented


def test_openapi_route_serves_the_document_and_404_uses_a_documented_code(
    doc: dict[str, Any],
) -> None:
    async def body() -> None:
        async with TestClient(TestServer(dummy_app())) as client:
            resp = await client.get("/openapi.json")
            assert resp.status == 200
            assert json.loads(await resp.read()) == doc
            missing = await client.get("/v2/nothing")
            assert missing.status == 404
            assert (await missing.json())["error"] in doc["components"]["schemas"]["ErrorCode"][
                "enum"
            ]

    asyncio.run(body())


# -- every status any route can send ----------------------------------------------------------


@pytest.mark.parametrize("status", ["400", "405", "408", "415", "500"])
def test_every_operation_documents_the_statuses_any_route_can_send(
    doc: dict[str, Any], status: str
) -> None:
    # 400 a request that is not HTTP/1.1, 405 another method, 408 a head or body too slow,
    # 415 any Content-Encoding, 500 a bug: the framings answer these on every route.
    from verifier.sidecar.openapi import sidecar_document

    for document in (doc, sidecar_document()):
        for path, item in document["paths"].items():
            for method, op in item.items():
                if method in HTTP_METHODS:
                    assert status in op["responses"], (path, method, status)


def test_405_documents_allow(doc: dict[str, Any]) -> None:
    assert "Allow" in doc["components"]["responses"]["MethodNotAllowed"]["headers"]


def test_offline_limit_is_only_in_the_sidecars_document(doc: dict[str, Any]) -> None:
    from verifier.errors import OFFLINE_LIMIT
    from verifier.sidecar.openapi import sidecar_document

    assert OFFLINE_LIMIT not in json.dumps(doc)
    sidecar = sidecar_document()
    assert OFFLINE_LIMIT in sidecar["components"]["schemas"]["ReasonCode"]["enum"]
