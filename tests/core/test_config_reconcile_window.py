"""VERIFIER_RECONCILE_WINDOW: how long the centre remembers each use for reconciling gateways."""

from __future__ import annotations

import pytest

from verifier.config import DEFAULT_RECONCILE_WINDOW_MS, load_settings
from verifier.errors import ConfigError

REQUIRED = {"VERIFIER_TRUST_LIST": "trust.paseto", "VERIFIER_ROOT_KEY": "root.public"}


def test_the_default_is_72_hours() -> None:
    assert load_settings(REQUIRED).reconcile_window == DEFAULT_RECONCILE_WINDOW_MS == 259_200_000


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("24h", 86_400_000),
        ("7d", 604_800_000),
        ("330s", 330_000),  # exactly max_lifetime + exp_leeway (300 s + 30 s): the least
    ],
)
def test_durations_are_read(value: str, ms: int) -> None:
    settings = load_settings({**REQUIRED, "VERIFIER_RECONCILE_WINDOW": value})
    assert settings.reconcile_window == ms


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("72", "duration"),  # a bare number could be hours or seconds
        ("329s", "at least max_lifetime \\+ exp_leeway"),  # shorter than a token can live
        ("400d", "at most 366d"),
    ],
)
def test_bad_windows_name_the_variable(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^VERIFIER_RECONCILE_WINDOW: .*{message}"):
        load_settings({**REQUIRED, "VERIFIER_RECONCILE_WINDOW": value})
