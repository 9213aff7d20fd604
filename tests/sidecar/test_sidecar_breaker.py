"""The circuit breaker as a table: events at given times, and what each returns.

A step is ``(action, now_ms, expected)``:

- ``route``: where a new request goes (FORWARD, OFFLINE, REFUSE);
- ``failed``: a forward failed; where that request goes (OFFLINE, REFUSE);
- ``probe_failed`` / ``success``: a probe or forward result (expected: the mode after);
- ``probe_delay``: ms until the next probe, None while closed.
"""

from __future__ import annotations

import pytest

from verifier.sidecar.breaker import (
    CLOSED,
    FORWARD,
    OFFLINE,
    REFUSE,
    Breaker,
    BreakerPolicy,
)

P = BreakerPolicy(failures_to_open=3, probe_interval_ms=1_000, max_offline_ms=10_000)
Step = tuple[str, int, object]

SCENARIOS: dict[str, list[Step]] = {
    "closed forwards everything": [
        ("route", 0, FORWARD),
        ("success", 1, "online"),
        ("route", 2, FORWARD),
        ("probe_delay", 2, None),  # nothing to probe while closed
    ],
    "a failure sends its own request offline, but the breaker stays closed": [
        ("failed", 100, OFFLINE),
        ("route", 101, FORWARD),  # one failure is not an outage yet
        ("failed", 200, OFFLINE),
        ("route", 201, FORWARD),
    ],
    "K failures in a row open it; new requests then go offline without a forward": [
        ("failed", 100, OFFLINE),
        ("failed", 200, OFFLINE),
        ("failed", 300, OFFLINE),  # the third opens
        ("route", 301, OFFLINE),
        ("probe_delay", 301, 999),  # first probe one interval after opening
        ("probe_delay", 1_300, 0),  # due
        ("probe_delay", 5_000, 0),  # overdue is still 0, never negative
    ],
    "a success between failures resets the count": [
        ("failed", 100, OFFLINE),
        ("failed", 200, OFFLINE),
        ("success", 250, "online"),
        ("failed", 300, OFFLINE),
        ("failed", 400, OFFLINE),
        ("route", 401, FORWARD),  # only two in a row since the success
    ],
    "a failed probe keeps it open and schedules the next; a good probe closes it": [
        ("failed", 0, OFFLINE),
        ("failed", 1, OFFLINE),
        ("failed", 2, OFFLINE),
        ("probe_failed", 1_002, "offline"),
        ("probe_delay", 1_002, 1_000),
        ("route", 1_500, OFFLINE),
        ("success", 2_002, "online"),
        ("route", 2_003, FORWARD),
        ("probe_delay", 2_003, None),
    ],
    "max age counts from the first failure of the run, not from opening": [
        ("failed", 1_000, OFFLINE),  # offline_since = 1 000
        ("failed", 5_000, OFFLINE),
        ("failed", 9_000, OFFLINE),  # opens at 9 000
        ("route", 10_999, OFFLINE),  # 9 999 ms offline: still allowed
        ("route", 11_000, REFUSE),  # exactly max age: refused (503)
        ("route", 50_000, REFUSE),
        ("success", 50_001, "online"),  # the centre is back: all forgotten
        ("route", 50_002, FORWARD),
        ("failed", 50_003, OFFLINE),  # a new run starts a new clock
    ],
    "max age also applies to a request whose own forward failed while closed": [
        ("failed", 0, OFFLINE),
        ("success", 1, "online"),
        ("failed", 2, OFFLINE),  # new run from 2
        ("failed", 10_001, OFFLINE),  # 9 999 ms
        ("failed", 10_002, REFUSE),  # 10 000 ms: this request gets 503
    ],
    "a straggling failure while open moves the next probe, not offline_since": [
        ("failed", 0, OFFLINE),
        ("failed", 0, OFFLINE),
        ("failed", 0, OFFLINE),
        ("failed", 600, OFFLINE),  # a forward sent before opening, failing late
        ("probe_delay", 600, 1_000),
        ("route", 9_999, OFFLINE),
        ("route", 10_000, REFUSE),  # still measured from 0
    ],
}


def apply(b: Breaker, action: str, now: int) -> object:
    if action == "route":
        return b.route(now)
    if action == "failed":
        return b.failed(now)
    if action == "probe_failed":
        b.record_failure(now)
        return b.status()["mode"]
    if action == "success":
        b.record_success(now)
        return b.status()["mode"]
    if action == "probe_delay":
        return b.probe_delay(now)
    raise AssertionError(action)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name: str) -> None:
    b = Breaker(P)
    for i, (action, now, expected) in enumerate(SCENARIOS[name]):
        assert apply(b, action, now) == expected, f"step {i}: {action} at {now}"


def test_status_names_mode_and_offline_since() -> None:
    b = Breaker(P)
    assert b.status() == {"mode": "online", "offline_since": None}
    b.failed(1_000)
    # failing, not yet open: the scan that failed was answered offline, and so says the status
    assert b.status() == {"mode": "offline", "offline_since": 1_000}
    assert b.state == CLOSED
    b.failed(2_000)
    b.failed(3_000)
    assert b.status() == {"mode": "offline", "offline_since": 1_000}
    b.record_success(4_000)
    assert b.status() == {"mode": "online", "offline_since": None}


def test_a_refused_credential_allows_no_offline_acceptance_until_accepted() -> None:
    b = Breaker(P)
    b.credential_refused("GET /v1/gateway/scanners: 403 gateway_revoked")
    assert b.route(1_000) == FORWARD  # the centre still judges every scan it can
    assert b.failed(1_000) == REFUSE  # ... but none is accepted offline
    for t in (2_000, 3_000):
        b.record_failure(t)
    assert b.route(3_500) == REFUSE
    b.credential_accepted()
    assert b.route(3_600) == OFFLINE


def test_default_policy() -> None:
    # VERIFIER_OFFLINE_MAX_AGE defaults to 12h
    assert BreakerPolicy().max_offline_ms == 12 * 3_600_000


def test_zero_max_age_never_accepts_offline() -> None:
    b = Breaker(BreakerPolicy(max_offline_ms=0))
    assert b.failed(0) == REFUSE


@pytest.mark.parametrize(
    "kwargs", [{"failures_to_open": 0}, {"probe_interval_ms": 0}, {"max_offline_ms": -1}]
)
def test_invalid_policy(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(**kwargs)
