"""The token-core commands as a user runs them: keys new, trust sign/show, mint, check."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import orjson
import pytest

from verifier import paserk, rfc3339
from verifier.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    for name in ("root", "nhsa"):
        code, out, _ = run(capsys, "keys", "new", "--name", name, "--dir", str(tmp_path))
        assert code == 0
        public = paserk.public_from_paserk((tmp_path / f"{name}.public").read_text().strip())
        assert out.strip() == paserk.pid(public)  # prints the k4.pid
    src = tmp_path / "issuers.json"
    entry = {
        "public": (tmp_path / "nhsa.public").read_text().strip(),
        "issuer": "nhsa",
        "cards": ["mi-voucher"],
    }
    src.write_bytes(orjson.dumps({"keys": [entry]}))
    code, _, _ = run(
        capsys, "trust", "sign", str(src), "--root", str(tmp_path / "root.secret"),
        "--out", str(tmp_path / "trust.paseto"), "--valid-for", "30d",
    )  # fmt: skip
    assert code == 0
    return tmp_path


def test_keys_new_writes_a_private_secret_and_refuses_to_overwrite(keys: Path, capsys) -> None:
    mode = stat.S_IMODE(os.stat(keys / "root.secret").st_mode)
    assert mode == 0o600
    assert (keys / "root.secret").read_text().startswith("k4.secret.")
    code, _, err = run(capsys, "keys", "new", "--name", "root", "--dir", str(keys))
    assert code == 2 and err.startswith("verifier: error:") and "refusing to overwrite" in err
    code, _, err = run(capsys, "keys", "new", "--name", "../evil", "--dir", str(keys))
    assert code == 2 and err.count("\n") == 1


def test_trust_show_prints_the_verified_list(keys: Path, capsys) -> None:
    code, out, _ = run(
        capsys, "trust", "show", str(keys / "trust.paseto"), "--root", str(keys / "root.public")
    )
    assert code == 0
    doc = orjson.loads(out)
    assert [k["issuer"] for k in doc["keys"]] == ["nhsa"] and doc["version"] > 0
    # Another root's public key does not verify it: one clear line, non-zero exit.
    run(capsys, "keys", "new", "--name", "other", "--dir", str(keys))
    code, _, err = run(
        capsys, "trust", "show", str(keys / "trust.paseto"), "--root", str(keys / "other.public")
    )
    assert code == 2 and "not signed by the configured root key" in err and err.count("\n") == 1


def test_trust_sign_accepts_toml(keys: Path, capsys) -> None:
    src = keys / "issuers.toml"
    public = (keys / "nhsa.public").read_text().strip()
    src.write_text(f'[[keys]]\npublic = "{public}"\nissuer = "nhsa"\ncards = ["mi-voucher"]\n')
    code, _, _ = run(
        capsys, "trust", "sign", str(src), "--root", str(keys / "root.secret"), "--out", str(keys / "t2.paseto"),
    )  # fmt: skip
    assert code == 0 and (keys / "t2.paseto").read_text().startswith("v4.public.")


def test_mint_then_check_is_valid_and_a_changed_token_is_not(keys: Path, capsys) -> None:
    code, out, _ = run(
        capsys, "mint", "--key", str(keys / "nhsa.secret"), "--iss", "nhsa", "--sub", "alice",
        "--card", "mi-voucher", "--ttl", "60s",
    )  # fmt: skip
    assert code == 0
    token = out.strip()
    trust_args = ["--trust", str(keys / "trust.paseto"), "--root", str(keys / "root.public")]
    code, out, _ = run(capsys, "check", token, *trust_args)
    verdict = orjson.loads(out)
    assert code == 0 and verdict["valid"] is True and verdict["claims"]["sub"] == "alice"
    tampered = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    code, out, _ = run(capsys, "check", tampered, *trust_args)
    assert code == 1 and orjson.loads(out)["valid"] is False
    # --at: the same token two minutes later is expired.
    later = rfc3339.format(rfc3339.parse(verdict["claims"]["exp"]) + 120)
    code, out, _ = run(capsys, "check", token, *trust_args, "--at", later)
    assert code == 1 and orjson.loads(out)["reason"] == "expired"


def test_check_reads_the_token_from_stdin(keys: Path, capsys, monkeypatch) -> None:
    code, out, _ = run(
        capsys, "mint", "--key", str(keys / "nhsa.secret"), "--iss", "nhsa", "--sub", "bob", "--card", "mi-voucher",
    )  # fmt: skip
    token = out.strip()
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    code, out, _ = run(
        capsys,
        "check",
        "-",
        "--trust",
        str(keys / "trust.paseto"),
        "--root",
        str(keys / "root.public"),
    )
    assert code == 0 and orjson.loads(out)["claims"]["sub"] == "bob"


def test_mint_qr_draws_the_code_before_the_token(keys: Path, capsys) -> None:
    code, out, _ = run(
        capsys, "mint", "--key", str(keys / "nhsa.secret"), "--iss", "nhsa", "--sub", "carol",
        "--card", "mi-voucher", "--qr",
    )  # fmt: skip
    lines = out.strip().splitlines()
    assert code == 0 and lines[-1].startswith("v4.public.")
    assert any("█" in line or "▀" in line or "▄" in line for line in lines[:-1])


def test_errors_are_one_line_and_non_zero(keys: Path, capsys) -> None:
    code, _, err = run(
        capsys,
        "check",
        "x",
        "--trust",
        str(keys / "missing.paseto"),
        "--root",
        str(keys / "root.public"),
    )
    assert code == 2 and err.startswith("verifier: error:") and err.count("\n") == 1
    code, _, err = run(
        capsys,
        "mint",
        "--key",
        str(keys / "nhsa.public"),
        "--iss",
        "nhsa",
        "--sub",
        "a",
        "--card",
        "mi-voucher",
    )
    assert code == 2 and "k4.secret" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv", [["--help"], ["keys", "new", "--help"], ["trust", "sign", "--help"], ["trust", "show", "--help"],
             ["mint", "--help"], ["check", "--help"], ["serve", "--help"], ["demo", "--help"]],
)  # fmt: skip
def test_help_everywhere(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VERIFIER_EXP_LEEWAY", "1000s"),  # cap 300s
        ("VERIFIER_FUTURE_LEEWAY", "61s"),  # cap 60s
        ("VERIFIER_MAX_LIFETIME", "3601s"),  # cap 3600s
        ("VERIFIER_CLOCK_SKEW", "11m"),  # cap 600s
        ("VERIFIER_EXP_LEEWAY", "1000"),  # a bare number: refused as one
        ("VERIFIER_CLOCK_SKEW", "1500ms"),  # not whole seconds
    ],
)
def test_serve_refuses_a_bad_claim_duration_naming_the_variable(
    keys: Path, capsys, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # Regression: the settings loader accepted VERIFIER_EXP_LEEWAY=1000 and start-up then
    # failed with "policy.exp_leeway must be an integer in [0, 300]", naming no variable.
    for name in [n for n in os.environ if n.startswith("VERIFIER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VERIFIER_TRUST_LIST", str(keys / "trust.paseto"))
    monkeypatch.setenv("VERIFIER_ROOT_KEY", str(keys / "root.public"))
    monkeypatch.setenv("VERIFIER_STORE", "memory://")
    monkeypatch.setenv("VERIFIER_LISTEN", "127.0.0.1:0")
    monkeypatch.setenv(variable, value)
    code, out, err = run(capsys, "serve")
    assert code == 2 and out == ""
    assert err.startswith(f"verifier: error: {variable}: ") and err.count("\n") == 1, err
