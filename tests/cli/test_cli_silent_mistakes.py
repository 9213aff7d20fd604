"""Mistakes that used to be accepted in silence are refused with one line that says why.

A bare number as a duration (was: ``--valid-for 30`` meant 30 seconds, and the service
answered 503 trust_list_expired half a minute later), a negative or zero lifetime (was:
``mint --ttl -5`` printed an expired token and exited 0), and settings that would be ignored.
The durations grammar is :mod:`verifier.durations`, shared with the gateway sidecar.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from verifier import b64url, durations, paserk, rfc3339
from verifier.cli.main import main
from verifier.config import AdminSettings, load, load_settings
from verifier.errors import ConfigError
from verifier.keyfiles import write_private

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "verifier.toml"
REQUIRED = {"VERIFIER_TRUST_LIST": "t", "VERIFIER_ROOT_KEY": "r"}


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    root, nhsa = paserk.generate(), paserk.generate()
    write_private(tmp_path / "root.secret", paserk.secret_to_paserk(root.secret))
    write_private(tmp_path / "nhsa.secret", paserk.secret_to_paserk(nhsa.secret))
    public = paserk.public_to_paserk(nhsa.public)
    (tmp_path / "issuers.json").write_text(
        orjson.dumps(
            {"keys": [{"public": public, "issuer": "nhsa", "cards": ["mi-voucher"]}]}
        ).decode()
    )
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def mint(keys: Path, ttl: str) -> list[str]:
    return ["mint", "--key", str(keys / "nhsa.secret"), "--iss", "nhsa", "--sub", "alice",
            "--card", "mi-voucher", "--ttl", ttl]  # fmt: skip


def sign(keys: Path, valid_for: str) -> list[str]:
    return ["trust", "sign", str(keys / "issuers.json"), "--root", str(keys / "root.secret"),
            "--out", str(keys / "trust.paseto"), "--valid-for", valid_for]  # fmt: skip


# (argument, what the one error line must say)
REFUSED = [
    ("30", "'30' is a bare number; say the unit, e.g. 30s"),  # seconds? days? refused
    ("-5", "cannot be negative"),  # was: an already-expired token, exit 0
    # ("-5s" never reaches us: argparse takes it for an option and refuses it itself.)
    ("0s", "must be more than zero"),  # a token nobody could use
    ("1.5", "is a bare number"),
    ("1500ms", "whole seconds only"),
    ("5 minutes", "expected a duration such as 30s, 15m, 12h, 30d"),
    ("367d", "at most 366d"),
]


@pytest.mark.parametrize("value, says", REFUSED)
def test_mint_ttl_refuses(keys: Path, capsys, value: str, says: str) -> None:
    code, out, err = run(capsys, *mint(keys, value))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("verifier: error: --ttl: "), err
    assert says in err, err


@pytest.mark.parametrize("value, says", REFUSED)
def test_trust_sign_valid_for_refuses(keys: Path, capsys, value: str, says: str) -> None:
    code, out, err = run(capsys, *sign(keys, value))
    assert code == 2 and out == "" and not (keys / "trust.paseto").exists()
    assert err.count("\n") == 1 and err.startswith("verifier: error: --valid-for: "), err
    assert says in err, err


def test_durations_with_units_are_taken(keys: Path, capsys) -> None:
    code, out, _ = run(capsys, *sign(keys, "12h"))
    assert code == 0
    until = rfc3339.parse(out.split("valid until ")[1].strip())
    assert abs(until - (time.time() + 12 * 3600)) < 60
    code, out, _ = run(capsys, *mint(keys, "2m"))
    claims = orjson.loads(claims_of(out.strip()))
    assert rfc3339.parse(claims["exp"]) - rfc3339.parse(claims["iat"]) == 120


def claims_of(token: str) -> bytes:
    """The claims of a v4.public token, unverified (the message before the signature)."""
    return b64url.decode(token.split(".")[2].encode())[:-64]


@pytest.mark.parametrize(
    "text, ms",
    [("90s", 90_000), ("15m", 900_000), ("30d", 2_592_000_000), ("1h30m", 5_400_000)],
)
def test_the_shared_grammar(text: str, ms: int) -> None:
    assert durations.parse_duration("X", text) == ms


def test_a_bare_number_setting_says_it_lacks_a_unit() -> None:
    # The same grammar reads the durations of the settings (e.g. VERIFIER_RECONCILE_WINDOW).
    with pytest.raises(ConfigError, match=r"^VERIFIER_X: '12' is a bare number; say the unit"):
        durations.parse_duration("VERIFIER_X", "12")


@pytest.mark.parametrize(
    "env, says",
    [
        ({"VERIFIER_LOG_FORMAT": "xml"}, "VERIFIER_LOG_FORMAT: one of text, json"),
        ({"VERIFIER_ACCESS_LOG": "maybe"}, "VERIFIER_ACCESS_LOG: expected true or false"),
        # TLS files for a plain redis:// store would be silently unused.
        ({"VERIFIER_REDIS_CA_FILE": "ca.pem"}, "VERIFIER_REDIS_CA_FILE: TLS files are used only"),
        (
            {"VERIFIER_STORE": "rediss://h:6380/0", "VERIFIER_REDIS_CERT_FILE": "c.pem"},
            "VERIFIER_REDIS_KEY_FILE: the client certificate",
        ),
        (
            {"VERIFIER_STORE": "rediss://h:6380/0", "VERIFIER_REDIS_KEY_FILE": "k.pem"},
            "VERIFIER_REDIS_CERT_FILE: the client key",
        ),
    ],
)
def test_settings_mistakes_are_refused(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, **env})
    assert str(info.value).startswith(says), info.value


def test_the_sample_config_file_loads_for_serve_and_the_admin_commands() -> None:
    s = load_settings({}, None, str(EXAMPLE_CONFIG))
    assert s.store.startswith("rediss://") and s.redis_ca_file and s.redis_key_file
    assert (s.log_format, s.access_log, s.workers, s.listen) == ("json", True, 4, "127.0.0.1:8080")
    admin = load(AdminSettings, {}, None, str(EXAMPLE_CONFIG))
    assert admin.store == s.store and admin.redis_cert_file == s.redis_cert_file
