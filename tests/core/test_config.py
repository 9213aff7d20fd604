"""The settings loader (``verifier.config``): precedence, limits, and errors that name the source."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from verifier.config import AdminSettings, Settings, load, load_settings, setting
from verifier.errors import ConfigError
from verifier.policy import (
    MAX_CLOCK_SKEW,
    MAX_EXP_LEEWAY,
    MAX_FUTURE_LEEWAY,
    MAX_LIFETIME_CAP,
    ClaimPolicy,
)
from verifier.service.server import claim_policy

REQUIRED = {"VERIFIER_TRUST_LIST": "trust.paseto", "VERIFIER_ROOT_KEY": "root.public"}


def write_toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "verifier.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- regressions ------------------------------------------------------------------------------


def test_exp_leeway_above_the_cap_is_refused_by_the_loader_naming_the_variable() -> None:
    # Was accepted by the loader, then failed at start-up as "policy.exp_leeway must be …",
    # which names no variable an operator can find.
    with pytest.raises(ConfigError, match=r"^VERIFIER_EXP_LEEWAY: .*300s.*1000s"):
        load_settings({**REQUIRED, "VERIFIER_EXP_LEEWAY": "1000s"})
    with pytest.raises(ConfigError, match=r"^VERIFIER_EXP_LEEWAY: .*bare number"):
        load_settings({**REQUIRED, "VERIFIER_EXP_LEEWAY": "1000"})


# -- limits: one row per edge -----------------------------------------------------------------

LIMITS = [
    # (variable, value, accepted)
    ("VERIFIER_EXP_LEEWAY", f"{MAX_EXP_LEEWAY}s", True),  # exactly at the cap
    ("VERIFIER_EXP_LEEWAY", f"{MAX_EXP_LEEWAY + 1}s", False),  # one past it
    ("VERIFIER_EXP_LEEWAY", "0s", True),  # no leeway at all
    ("VERIFIER_EXP_LEEWAY", "-1s", False),  # negative
    ("VERIFIER_FUTURE_LEEWAY", f"{MAX_FUTURE_LEEWAY}s", True),
    ("VERIFIER_FUTURE_LEEWAY", f"{MAX_FUTURE_LEEWAY + 1}s", False),
    ("VERIFIER_MAX_LIFETIME", f"{MAX_LIFETIME_CAP}s", True),
    ("VERIFIER_MAX_LIFETIME", "1h", True),  # the same cap, another unit
    ("VERIFIER_MAX_LIFETIME", f"{MAX_LIFETIME_CAP + 1}s", False),
    ("VERIFIER_MAX_LIFETIME", "0s", False),  # no token could ever be valid
    ("VERIFIER_CLOCK_SKEW", f"{MAX_CLOCK_SKEW}s", True),
    ("VERIFIER_CLOCK_SKEW", f"{MAX_CLOCK_SKEW + 1}s", False),
    ("VERIFIER_STORE_DEADLINE_MS", "1", True),
    ("VERIFIER_STORE_DEADLINE_MS", "0", False),  # every store call would time out
    ("VERIFIER_STORE_DEADLINE_MS", "10000", True),
    ("VERIFIER_STORE_DEADLINE_MS", "10001", False),
    ("VERIFIER_WORKERS", "0", False),
    ("VERIFIER_WORKERS", "65", False),
    ("VERIFIER_MAX_BODY_BYTES", "255", False),
    ("VERIFIER_MAX_BATCH_BYTES", "8191", False),  # below the single-request limit (8192)
    ("VERIFIER_AUTH_CACHE_SECONDS", "0", True),  # 0 = no cache
    ("VERIFIER_AUTH_CACHE_SECONDS", "-0.5", False),
    ("VERIFIER_AUTH_CACHE_SECONDS", "nan", False),
    ("VERIFIER_TRUST_POLL_SECONDS", "0", False),  # would poll the file in a busy loop
    ("VERIFIER_LISTEN", "127.0.0.1:65536", False),
    ("VERIFIER_LISTEN", "[::1]:0", True),
    ("VERIFIER_LOG_LEVEL", "loud", False),
    ("VERIFIER_STORE", "postgres://db/x", False),
]


@pytest.mark.parametrize(("variable", "value", "accepted"), LIMITS, ids=lambda v: str(v))
def test_limits_are_checked_by_the_loader(variable: str, value: str, accepted: bool) -> None:
    environ = {**REQUIRED, variable: value}
    if accepted:
        load_settings(environ)
    else:
        with pytest.raises(ConfigError, match=f"^{variable}: "):
            load_settings(environ)


@pytest.mark.parametrize(
    ("exp_leeway", "future_leeway", "max_lifetime"),
    [(MAX_EXP_LEEWAY, MAX_FUTURE_LEEWAY, MAX_LIFETIME_CAP), (0, 0, 1)],
)
def test_every_accepted_claim_setting_builds_a_claim_policy(
    exp_leeway: int, future_leeway: int, max_lifetime: int
) -> None:
    s = load_settings(
        REQUIRED,
        {
            "exp_leeway": f"{exp_leeway}s",
            "future_leeway": f"{future_leeway}s",
            "max_lifetime": f"{max_lifetime}s",
        },
    )
    policy = claim_policy(s)
    assert (policy.exp_leeway, policy.future_leeway, policy.max_lifetime) == (
        exp_leeway,
        future_leeway,
        max_lifetime,
    )


def test_a_value_from_the_config_file_is_named_by_file_and_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'trust_list = "t"\nroot_key = "r"\nexp_leeway = "1000s"\n')
    with pytest.raises(ConfigError) as info:
        load_settings({"VERIFIER_CONFIG": path})
    assert str(info.value).startswith(f"config file {path}, key exp_leeway: ")


def test_a_cross_field_rule_names_the_source_of_the_field(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'store = "memory://"\nworkers = 2\n')
    with pytest.raises(ConfigError, match=r"key workers: .*memory://"):
        load_settings(REQUIRED, config_file=path)
    with pytest.raises(ConfigError, match=r"^VERIFIER_WORKERS: .*memory://"):
        load_settings(REQUIRED, {"workers": 2, "store": "memory://"})


# -- values and types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"VERIFIER_WORKERS": "abc"}, r"^VERIFIER_WORKERS: expected an integer, got 'abc'"),
        ({"VERIFIER_WORKERS": "2.0"}, r"^VERIFIER_WORKERS: expected an integer"),
        ({"VERIFIER_FAST_PATH": "maybe"}, r"^VERIFIER_FAST_PATH: expected true or false"),
        ({"VERIFIER_TRUST_LIST": ""}, r"^VERIFIER_TRUST_LIST: .*required"),
    ],
)
def test_bad_environment_values_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({**REQUIRED, **environ})


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("workers = 2.5", "workers"),  # a TOML float where an integer belongs
        ("workers = true", "workers"),  # a TOML bool is not an integer
        ("listen = 8080", "listen"),  # a number where text belongs
        ("auth_cache_seconds = false", "auth_cache_seconds"),
    ],
)
def test_bad_config_file_values_name_the_key(tmp_path: Path, line: str, key: str) -> None:
    path = write_toml(tmp_path, line + "\n")
    with pytest.raises(ConfigError, match=f"^config file .*, key {key}: expected"):
        load_settings(REQUIRED, config_file=path)


def test_config_file_values_of_every_type_are_read(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        "workers = 3\nauth_cache_seconds = 0.5\ntrust_poll_seconds = 1\nfast_path = false\n"
        'listen = "0.0.0.0:9000"\n',
    )
    s = load_settings(REQUIRED, config_file=path)
    assert (s.workers, s.auth_cache_seconds, s.trust_poll_seconds) == (3, 0.5, 1.0)
    assert s.fast_path is False and s.host_port == ("0.0.0.0", 9000)


def test_unknown_key_in_the_config_file_is_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "exp_leway = 30\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'exp_leway'"):
        load_settings(REQUIRED, config_file=path)


def test_unreadable_config_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=f"config file {missing}"):
        load_settings({**REQUIRED, "VERIFIER_CONFIG": missing})
    broken = write_toml(tmp_path, "workers = \n")
    with pytest.raises(ConfigError, match=f"config file {broken}"):
        load_settings(REQUIRED, config_file=broken)


# -- precedence -------------------------------------------------------------------------------


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'workers = 2\nstore_deadline_ms = 70\nexp_leeway = "40s"\n')
    environ = {
        **REQUIRED,
        "VERIFIER_CONFIG": path,
        "VERIFIER_WORKERS": "3",
        "VERIFIER_EXP_LEEWAY": "50s",
    }
    s = load_settings(environ, {"workers": 4, "exp_leeway": None})  # None = flag not given
    assert s.workers == 4  # flag over environment and file
    assert s.exp_leeway == 50_000  # environment over file
    assert s.store_deadline_ms == 70  # file over default
    assert s.future_leeway == Settings().future_leeway  # default


def test_config_flag_beats_the_config_variable(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("workers = 2\n")
    (tmp_path / "b.toml").write_text("workers = 5\n")
    environ = {**REQUIRED, "VERIFIER_CONFIG": str(tmp_path / "a.toml")}
    assert load_settings(environ, config_file=str(tmp_path / "b.toml")).workers == 5
    assert load_settings(environ).workers == 2


def test_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="no setting 'wokers'"):
        load_settings(REQUIRED, {"wokers": 2})


# -- the admin commands' settings ---------------------------------------------------------------


def test_admin_settings_read_the_service_config_file(tmp_path: Path) -> None:
    # One file serves `serve` and the admin commands: keys of the service are not typos here.
    path = write_toml(
        tmp_path,
        'store = "redis://10.0.0.5:6380/2"\nallow_eviction = true\ntrust_list = "t"\nworkers = 4\n',
    )
    assert load(AdminSettings, {"VERIFIER_CONFIG": path}) == AdminSettings(
        "redis://10.0.0.5:6380/2", True
    )
    assert load(AdminSettings, {"VERIFIER_CONFIG": path}, {"store": "redis://h/0"}).store == (
        "redis://h/0"
    )


def test_admin_settings_refuse_the_memory_store_naming_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^VERIFIER_STORE: memory:// .*verifier demo"):
        load(AdminSettings, {"VERIFIER_STORE": "memory://"})
    path = write_toml(tmp_path, 'store = "memory://"\n')
    with pytest.raises(ConfigError, match=r"key store: memory://"):
        load(AdminSettings, {}, config_file=path)


def test_admin_settings_ignore_service_variables() -> None:
    # A service-only variable that is bad does not stop an admin command.
    s = load(AdminSettings, {"VERIFIER_WORKERS": "abc", "VERIFIER_STORE": "rediss://h/1"})
    assert s == AdminSettings("rediss://h/1", False)


# -- a second settings class (the shape a future command's settings take) ---------------------


def _millis(label: str, raw: object) -> int:
    if not isinstance(raw, str) or not raw.endswith("ms") or not raw[:-2].isdigit():
        raise ConfigError(f"{label}: expected e.g. 250ms, got {raw!r}")
    return int(raw[:-2])


@dataclass(frozen=True)
class OtherSettings:
    store: str = "redis://127.0.0.1:6379/0"
    grace_ms: int = setting(1000, parse=_millis)
    queue: int = setting(8, low=1, high=64)

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.grace_ms > 60_000 and self.queue > 32:
            yield "queue", "at most 32 with a grace above one minute"


def test_the_loader_builds_any_settings_dataclass(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'grace_ms = "90000ms"\n')
    s = load(OtherSettings, {"VERIFIER_QUEUE": "16", "VERIFIER_CONFIG": path})
    assert s == OtherSettings(grace_ms=90_000, queue=16)
    with pytest.raises(ConfigError, match=r"^VERIFIER_GRACE_MS: expected e.g. 250ms"):
        load(OtherSettings, {"VERIFIER_GRACE_MS": "2s"})
    with pytest.raises(ConfigError, match=r"^VERIFIER_QUEUE: must be between 1 and 64, got 65"):
        load(OtherSettings, {"VERIFIER_QUEUE": "65"})
    with pytest.raises(ConfigError, match=r"^VERIFIER_QUEUE: at most 32"):
        load(OtherSettings, {"VERIFIER_QUEUE": "40"}, config_file=path)
    with pytest.raises(ConfigError, match="unknown setting 'grace_ms'"):
        load_settings(REQUIRED, config_file=path)  # not a key of any command in FILE_SETTINGS


def test_settings_are_frozen() -> None:
    s = load_settings(REQUIRED)
    for f in fields(s):
        with pytest.raises(AttributeError):
            setattr(s, f.name, getattr(s, f.name))


# -- how long a nonce is kept ---------------------------------------------------------------


@pytest.mark.parametrize(
    "exp_in, skew, want_ms",
    [
        (60, 60, (60 + 30 + 60 + 1) * 1000),  # exp + leeway + skew, and a second to spare
        (60, 0, (60 + 30 + 1) * 1000),  # one verifier alone: the old rule
        (-200, 60, 1000),  # long past every edge: still a positive time to live
    ],
)
def test_nonce_outlives_every_verifier_within_the_clock_skew(exp_in, skew, want_ms):
    now = 1_800_000_000.0
    assert ClaimPolicy(clock_skew=skew).nonce_ttl_ms(now + exp_in, now) == want_ms


def test_clock_skew_setting_is_capped_naming_the_variable():
    with pytest.raises(ConfigError, match="VERIFIER_CLOCK_SKEW"):
        load_settings({**REQUIRED, "VERIFIER_CLOCK_SKEW": "601s"})


# -- the claim policy takes durations with units ----------------------------------------------

CLAIM_VARIABLES = (
    "VERIFIER_EXP_LEEWAY",
    "VERIFIER_FUTURE_LEEWAY",
    "VERIFIER_MAX_LIFETIME",
    "VERIFIER_CLOCK_SKEW",
)


@pytest.mark.parametrize("variable", CLAIM_VARIABLES)
@pytest.mark.parametrize("value", ["30", "0", "-5", "1.5"])
def test_a_bare_number_for_a_claim_setting_is_refused_naming_the_variable(
    variable: str, value: str
) -> None:
    # Was read as seconds; "30" could as well mean minutes, so it is refused, as elsewhere.
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, variable: value})
    message = str(info.value)
    assert message.startswith(f"{variable}: "), message
    if value != "-5":  # a sign is refused as a negative duration
        assert "bare number; say the unit" in message, message


@pytest.mark.parametrize("key", ["exp_leeway", "future_leeway", "max_lifetime", "clock_skew"])
def test_a_bare_number_for_a_claim_setting_in_the_config_file_is_refused(
    tmp_path: Path, key: str
) -> None:
    path = write_toml(tmp_path, f"{key} = 30\n")
    with pytest.raises(ConfigError, match=f"^config file {path}, key {key}: .*bare number"):
        load_settings(REQUIRED, config_file=path)


@pytest.mark.parametrize(
    ("environ", "want"),
    [
        ({}, (30, 5, 300, 60)),  # the defaults
        (
            {
                "VERIFIER_EXP_LEEWAY": "1m",
                "VERIFIER_FUTURE_LEEWAY": "10s",
                "VERIFIER_MAX_LIFETIME": "5m",
                "VERIFIER_CLOCK_SKEW": "2m",
            },
            (60, 10, 300, 120),
        ),
        ({"VERIFIER_MAX_LIFETIME": "1h", "VERIFIER_CLOCK_SKEW": "10m"}, (30, 5, 3600, 600)),
        ({"VERIFIER_MAX_LIFETIME": "1m30s", "VERIFIER_EXP_LEEWAY": "0s"}, (0, 5, 90, 60)),
        ({"VERIFIER_EXP_LEEWAY": "2000ms"}, (2, 5, 300, 60)),  # whole seconds in another unit
    ],
)
def test_claim_settings_with_units_reach_the_claim_policy_in_seconds(
    environ: dict[str, str], want: tuple[int, int, int, int]
) -> None:
    s = load_settings({**REQUIRED, **environ})
    p = claim_policy(s)
    assert (p.exp_leeway, p.future_leeway, p.max_lifetime, p.clock_skew) == want
    assert (s.exp_leeway, s.future_leeway, s.max_lifetime, s.clock_skew) == tuple(
        1000 * x for x in want
    )


@pytest.mark.parametrize("variable", CLAIM_VARIABLES)
@pytest.mark.parametrize("value", ["1500ms", "250ms", "2s1ms"])
def test_a_claim_setting_below_whole_seconds_is_refused(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: whole seconds only .*{value!r}"):
        load_settings({**REQUIRED, variable: value})


@pytest.mark.parametrize(
    ("variable", "value", "cap"),
    [
        ("VERIFIER_EXP_LEEWAY", "5m1s", "300s"),
        ("VERIFIER_FUTURE_LEEWAY", "2m", "60s"),
        ("VERIFIER_MAX_LIFETIME", "2h", "3600s"),
        ("VERIFIER_CLOCK_SKEW", "1d", "600s"),
    ],
)
def test_a_claim_setting_above_its_cap_is_refused_saying_the_cap(
    variable: str, value: str, cap: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: must be between 0?1?s and {cap}, got"):
        load_settings({**REQUIRED, variable: value})
