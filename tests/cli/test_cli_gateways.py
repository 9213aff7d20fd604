"""`verifier gateways` and `verifier conflicts` against a real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import pytest
from redis_server import RedisServer

from verifier import rfc3339
from verifier.cli.conflicts import parse_since
from verifier.cli.main import main
from verifier.errors import ConfigError
from verifier.records import Conflict, Gateway, Use
from verifier.store import RedisStore


@pytest.fixture
def store_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """VERIFIER_STORE set to the emptied test server; gives its URL."""
    monkeypatch.setenv("VERIFIER_STORE", redis_url)
    monkeypatch.delenv("VERIFIER_ALLOW_EVICTION", raising=False)
    return redis_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def read_gateway(url: str, gateway_id: str) -> Gateway | None:
    async def body() -> Gateway | None:
        store = RedisStore(url)
        try:
            return await store.get_gateway(gateway_id)
        finally:
            await store.close()

    return asyncio.run(body())


def stored_values(url: str) -> bytes:
    client = RedisServer.client_for(url)
    try:
        return b"".join(
            repr(client.dump(key)).encode()
            for key in client.keys("*")  # sets too
        )
    finally:
        client.close()


def one_error_line(err: str, needle: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verifier: error: "), err
    assert needle in lines[0], err


# -- gateways ---------------------------------------------------------------------------------


def test_a_gateway_credential_is_shown_once_listed_and_revoked(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(capsys, "institutions", "put", "hosp-1", "--name", "H", "--cards", "mi-voucher")[0] == 0
    )
    code, out, err = run(capsys, "gateways", "add", "--institution", "hosp-1")
    assert code == 0, err
    credential = out.strip()
    assert len(out.splitlines()) == 1 and "cannot be shown again" in err
    gateway_id, secret = credential.split(".")
    assert gateway_id.startswith("g-") and credential not in err
    gateway = read_gateway(store_env, gateway_id)
    assert gateway == Gateway(gateway_id, "hosp-1", hashlib.sha256(secret.encode()).hexdigest())
    assert secret.encode() not in stored_values(store_env)  # only the hash is kept

    code, out, err = run(capsys, "gateways", "list", "--institution", "hosp-1")
    assert code == 0, err
    assert json.loads(out) == [{"id": gateway_id, "institution": "hosp-1", "revoked": False}]
    assert secret not in out and gateway.secret_hash not in out

    code, out, err = run(capsys, "gateways", "revoke", gateway_id)
    assert code == 0 and "revoked" in out, err
    assert read_gateway(store_env, gateway_id) == Gateway(
        gateway_id, "hosp-1", gateway.secret_hash, revoked=True
    )
    code, out, _ = run(capsys, "gateways", "revoke", gateway_id)  # again: harmless
    assert code == 0 and "already revoked" in out
    _, out, _ = run(capsys, "gateways", "list", "--institution", "hosp-1")
    assert json.loads(out)[0]["revoked"] is True
    _, out, err = run(capsys, "gateways", "list", "--institution", "hosp-2")
    assert json.loads(out) == [] and "0 gateway(s)" in err


def test_a_gateway_needs_an_existing_institution(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "gateways", "add", "--institution", "hosp-x")
    assert code != 0 and out == ""
    one_error_line(err, "no institution 'hosp-x'")


def test_revoking_an_unknown_gateway_exits_1(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "gateways", "revoke", "g-000000000000")
    assert code == 1
    one_error_line(err, "no gateway 'g-000000000000'")


# -- conflicts --------------------------------------------------------------------------------


def _conflict(nonce: str, detected_at: float) -> Conflict:
    return Conflict(
        holder="alice",
        nonce=nonce,
        first=Use("s-000000000001", "pharm-1", None, "on-1", 1_700_000_000.0),
        second=Use("s-000000000002", "hosp-1", "g-000000000003", "off-1", 1_700_000_060.0),
        detected_at=detected_at,
    )


def test_conflicts_are_listed_as_json_lines(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "conflicts", "list")
    assert (code, out) == (0, "") and "0 conflict(s)" in err

    async def seed() -> None:
        store = RedisStore(store_env)
        try:
            await store.add_conflict(_conflict("nonce-aaaaaaaaaaaa", 1_700_000_100.0))
            await store.add_conflict(_conflict("nonce-bbbbbbbbbbbb", time.time() - 60))
        finally:
            await store.close()

    asyncio.run(seed())
    code, out, err = run(capsys, "conflicts", "list")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0] == {
        "detected_at": "2023-11-14T22:15:00+00:00",
        "holder": "alice",
        "nonce": "nonce-aaaaaaaaaaaa",
        "first": {
            "institution": "pharm-1",
            "gateway": None,
            "scanner": "s-000000000001",
            "request_id": "on-1",
            "at": "2023-11-14T22:13:20+00:00",
        },
        "second": {
            "institution": "hosp-1",
            "gateway": "g-000000000003",
            "scanner": "s-000000000002",
            "request_id": "off-1",
            "at": "2023-11-14T22:14:20+00:00",
        },
    }
    assert [line["nonce"] for line in lines] == ["nonce-aaaaaaaaaaaa", "nonce-bbbbbbbbbbbb"]
    _, out, _ = run(capsys, "conflicts", "list", "--since", "1h")
    assert [json.loads(line)["nonce"] for line in out.splitlines()] == ["nonce-bbbbbbbbbbbb"]
    _, out, _ = run(capsys, "conflicts", "list", "--since", "2023-11-14T22:15:01+00:00")
    assert len(out.splitlines()) == 1
    code, out, err = run(capsys, "conflicts", "list", "--since", "last week")
    assert code != 0 and out == ""
    one_error_line(err, "--since")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, 0.0),  # everything
        ("2026-12-01T00:00:00+08:00", rfc3339.parse("2026-11-30T16:00:00Z")),
        ("24h", 1_000_000.0 - 86_400),
        ("90s", 1_000_000.0 - 90),
    ],
)
def test_since_is_a_time_or_a_duration_back(text: str | None, expected: float) -> None:
    assert parse_since(text, 1_000_000.0) == expected


@pytest.mark.parametrize("text", ["12", "yesterday", "-1h", ""])
def test_since_refuses_anything_else(text: str) -> None:
    with pytest.raises(ConfigError, match="--since"):
        parse_since(text, 1_000_000.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["gateways"],
        ["gateways", "add"],
        ["gateways", "list"],
        ["gateways", "revoke"],
        ["conflicts", "list"],
    ],
    ids=" ".join,
)
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: verifier " + " ".join(argv))
    assert "VERIFIER_STORE" in out
