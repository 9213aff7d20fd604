"""`verifier scanners list --institution INST`: an institution's scanners, revoked ones too.

It reads the per-institution scanner set the store keeps for the gateway directory
(:meth:`verifier.store.base.Store.scanners_of`); it never shows a secret or its hash.
"""

from __future__ import annotations

import json

import pytest

from verifier.cli.main import main


@pytest.fixture
def store_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("VERIFIER_STORE", redis_url)
    return redis_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_lists_each_scanner_of_the_institution_and_whether_it_is_revoked(store_env, capsys):
    for inst in ("hosp-1", "hosp-2"):
        assert (
            run(capsys, "institutions", "put", inst, "--name", "H", "--cards", "mi-voucher")[0] == 0
        )
    creds = [run(capsys, "scanners", "add", "--institution", "hosp-1")[1].strip() for _ in range(3)]
    other = run(capsys, "scanners", "add", "--institution", "hosp-2")[1].strip()
    ids = sorted(c.split(".")[0] for c in creds)
    assert run(capsys, "scanners", "revoke", ids[1])[0] == 0

    code, out, err = run(capsys, "scanners", "list", "--institution", "hosp-1")
    assert code == 0, err
    assert json.loads(out) == [
        {"id": i, "institution": "hosp-1", "revoked": i == ids[1]} for i in ids
    ]
    assert "3 scanner(s) of institution hosp-1, 1 revoked" in err
    for credential in [*creds, other]:
        assert credential.split(".")[1] not in out + err  # never a secret
    assert other.split(".")[0] not in out  # another institution's scanner


def test_an_institution_without_scanners_is_an_empty_list(store_env, capsys):
    assert (
        run(capsys, "institutions", "put", "hosp-3", "--name", "H", "--cards", "mi-voucher")[0] == 0
    )
    code, out, _ = run(capsys, "scanners", "list", "--institution", "hosp-3")
    assert code == 0 and json.loads(out) == []


def test_an_unknown_institution_is_one_line_and_exit_1(store_env, capsys):
    code, out, err = run(capsys, "scanners", "list", "--institution", "nowhere")
    assert code == 1 and out == ""
    assert err == "verifier: error: no institution 'nowhere' in the store\n"
