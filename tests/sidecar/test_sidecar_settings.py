"""`verifier sidecar`'s settings: defaults, units, and one clear line for each bad value."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_process import base_env, run_verifier

from verifier.config import SidecarSettings, load
from verifier.errors import ConfigError

GOOD = {
    "VERIFIER_UPSTREAM": "http://10.0.0.1:8080",
    "VERIFIER_GATEWAY_CREDENTIAL": "g-0123456789ab." + "A" * 43,
    "VERIFIER_ROOT_KEY": "root.public",
}


def test_defaults_are_the_documented_ones() -> None:
    s = load(SidecarSettings, GOOD)
    assert (s.listen, s.journal, s.trust_list_path) == (
        "127.0.0.1:8080",
        "sidecar.db",
        "sidecar.db.trust.paseto",
    )
    assert s.upstream_timeout_ms == 300
    assert (s.offline_limit, s.offline_window, s.offline_max_amount) == (2, 86_400_000, 50_000)
    assert s.offline_max_age == 12 * 3_600_000
    assert (s.exp_leeway, s.future_leeway, s.max_lifetime) == (30_000, 5_000, 300_000)


def test_units_are_read() -> None:
    s = load(
        SidecarSettings,
        {
            **GOOD,
            "VERIFIER_OFFLINE_WINDOW": "1h30m",
            "VERIFIER_OFFLINE_MAX_AMOUNT": "99.5",
            "VERIFIER_OFFLINE_MAX_AGE": "90s",
            "VERIFIER_UPSTREAM_TIMEOUT_MS": "1500",
        },
    )
    assert (s.offline_window, s.offline_max_amount, s.offline_max_age) == (5_400_000, 9_950, 90_000)
    assert s.upstream_timeout_ms == 1500


def test_the_claim_policy_takes_whole_seconds_with_units() -> None:
    s = load(
        SidecarSettings,
        {
            **GOOD,
            "VERIFIER_EXP_LEEWAY": "1m",
            "VERIFIER_FUTURE_LEEWAY": "10s",
            "VERIFIER_MAX_LIFETIME": "1h",
        },
    )
    assert (s.exp_leeway, s.future_leeway, s.max_lifetime) == (60_000, 10_000, 3_600_000)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VERIFIER_UPSTREAM", ""),  # required
        ("VERIFIER_UPSTREAM", "10.0.0.1:8080"),  # no scheme
        ("VERIFIER_UPSTREAM", "http://"),  # no host
        ("VERIFIER_UPSTREAM", "http://10.0.0.1:abc"),
        ("VERIFIER_UPSTREAM", "http://10.0.0.1:99999"),
        ("VERIFIER_UPSTREAM", "http://10.0.0.1:8080/verifier"),  # a path would be dropped
        ("VERIFIER_JOURNAL", "/no/such/folder/sidecar.db"),
        ("VERIFIER_TRUST_LIST", "/no/such/folder/trust.paseto"),
        ("VERIFIER_GATEWAY_CREDENTIAL", ""),  # required
        ("VERIFIER_GATEWAY_CREDENTIAL", "not a credential"),
        # a scanner's credential: the centre would refuse it on every call
        ("VERIFIER_GATEWAY_CREDENTIAL", "s-0123456789ab." + "A" * 43),
        ("VERIFIER_ROOT_KEY", ""),
        ("VERIFIER_LISTEN", "8080"),
        ("VERIFIER_OFFLINE_WINDOW", "24"),  # a bare number: hours? seconds?
        ("VERIFIER_OFFLINE_MAX_AGE", "-1h"),
        ("VERIFIER_OFFLINE_MAX_AMOUNT", "500.001"),
        ("VERIFIER_OFFLINE_LIMIT", "two"),
        ("VERIFIER_OFFLINE_LIMIT", "-1"),
        ("VERIFIER_UPSTREAM_TIMEOUT_MS", "0"),
        ("VERIFIER_EXP_LEEWAY", "30"),  # a bare number: the unit is said, not guessed
        ("VERIFIER_FUTURE_LEEWAY", "5"),
        ("VERIFIER_MAX_LIFETIME", "300"),
        ("VERIFIER_EXP_LEEWAY", "1500ms"),  # the claim policy counts whole seconds
        ("VERIFIER_MAX_LIFETIME", "3601s"),  # above the cap (3600s)
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    variable: str, value: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        load(SidecarSettings, {**GOOD, variable: value})
    done = run_verifier(["sidecar"], base_env(**{**GOOD, variable: value}))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"verifier: error: {variable}: "), lines


def test_one_config_file_serves_the_centre_and_the_sidecar(tmp_path: Path) -> None:
    conf = tmp_path / "verifier.toml"
    conf.write_text('store = "redis://10.0.0.2:6379/0"\noffline_limit = 5\njournal = "/var/x.db"\n')
    s = load(SidecarSettings, {**GOOD, "VERIFIER_CONFIG": str(conf)})
    assert (s.offline_limit, s.journal) == (5, "/var/x.db")


def test_a_missing_root_key_file_names_the_setting(tmp_path: Path) -> None:
    env = base_env(
        **{
            **GOOD,
            "VERIFIER_ROOT_KEY": str(tmp_path / "nope.public"),
            "VERIFIER_JOURNAL": str(tmp_path / "sidecar.db"),
        }
    )
    done = run_verifier(["sidecar"], env)
    assert done.returncode == 2
    assert done.stderr.startswith("verifier: error: VERIFIER_ROOT_KEY: "), done.stderr
    assert "Traceback" not in done.stderr
