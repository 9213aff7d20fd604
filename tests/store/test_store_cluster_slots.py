"""Cluster addressing without a server: key slots, the store URL, CLUSTER SLOTS, redirections,
and the start-up verdict on what the nodes answered."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot as redis_py_key_slot

from verifier.errors import ConfigError, StoreUnavailable
from verifier.store.cluster_checks import NodeReport, judge_cluster
from verifier.store.keys import holder_key, nonce_key
from verifier.store.resp import RespError
from verifier.store.slots import (
    ClusterURL,
    Redirect,
    SlotRange,
    key_slot,
    parse_cluster_slots,
    parse_redirect,
    tag_slot,
    uncovered,
)

# -- key slots ------------------------------------------------------------------------------


@given(st.binary(max_size=40))
def test_key_slot_agrees_with_redis_py(key: bytes) -> None:
    assert key_slot(key) == redis_py_key_slot(key)


@pytest.mark.parametrize("sub", ["h-alice", "1234567890", "张三", "a:b", "x" * 200])
def test_a_holder_and_its_nonces_are_in_the_slot_of_its_id(sub: str) -> None:
    slot = tag_slot(sub.encode())
    assert key_slot(holder_key(sub).encode()) == slot
    assert key_slot(nonce_key(sub, "n:{1}").encode()) == slot


# (key, the bytes that are hashed)
HASH_TAGS = [
    (b"foo", b"foo"),  # no braces: the whole key
    (b"vh:{h1}", b"h1"),
    (b"{a}{b}", b"a"),  # the first tag only
    (b"x{}y", b"x{}y"),  # an empty tag counts as none
    (b"x{y", b"x{y"),  # no closing brace
    (b"x}{y}", b"y"),  # a closing brace before the first opening one is plain text
]


@pytest.mark.parametrize(("key", "hashed"), HASH_TAGS)
def test_hash_tags(key: bytes, hashed: bytes) -> None:
    assert key_slot(key) == tag_slot(hashed)


# -- the store URL --------------------------------------------------------------------------


# (URL, seeds, username, password, TLS)
GOOD_URLS = [
    ("redis+cluster://10.0.0.1:7000", [("10.0.0.1", 7000)], None, None, False),
    (
        "redis+cluster://a:7000,b:7001, c:7002/",
        [("a", 7000), ("b", 7001), ("c", 7002)],
        None,
        None,
        False,
    ),
    ("rediss+cluster://u:p%40ss@h:6380/0", [("h", 6380)], "u", "p@ss", True),
    ("redis+cluster://:secret@h:1", [("h", 1)], None, "secret", False),  # password only
    ("redis+cluster://secret@h:1", [("h", 1)], None, "secret", False),  # as redis:// reads it
    (
        "redis+cluster://[::1]:7000,[fe80::2]:7001",
        [("::1", 7000), ("fe80::2", 7001)],
        None,
        None,
        False,
    ),
]


@pytest.mark.parametrize(("url", "seeds", "user", "password", "tls"), GOOD_URLS)
def test_cluster_urls(
    url: str, seeds: list[tuple[str, int]], user: str | None, password: str | None, tls: bool
) -> None:
    parsed = ClusterURL.parse(url)
    assert (list(parsed.seeds), parsed.username, parsed.password, parsed.tls) == (
        seeds,
        user,
        password,
        tls,
    )


BAD_URLS = [
    "redis://h:7000",  # not a cluster URL
    "redis+cluster://",  # no seed
    "redis+cluster://h",  # no port
    "redis+cluster://h:0",  # port out of range
    "redis+cluster://h:70000",
    "redis+cluster://h:7000/1",  # a cluster has database 0 only
    "redis+cluster://h:7000?timeout=1",  # no options in the URL
    "redis+cluster://h:7000,:7001",  # a seed without a host
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_cluster_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="VERIFIER_STORE"):
        ClusterURL.parse(url)


def test_bad_url_messages_do_not_repeat_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        ClusterURL.parse("redis+cluster://u:hunter2@h:7000/5")
    assert "hunter2" not in str(info.value)


def test_node_urls_carry_the_credentials_and_tls() -> None:
    url = ClusterURL.parse("rediss+cluster://us er:p@ss:w@seed:1")
    assert url.node_url(("10.0.0.5", 7001)) == "rediss://us%20er:p%40ss%3Aw@10.0.0.5:7001/0"
    assert url.node_url(("::1", 7001)) == "rediss://us%20er:p%40ss%3Aw@[::1]:7001/0"
    assert ClusterURL.parse("redis+cluster://h:1").node_url(("h", 2)) == "redis://h:2/0"


# -- CLUSTER SLOTS --------------------------------------------------------------------------


def test_cluster_slots_reply() -> None:
    reply = [
        [0, 5460, [b"10.0.0.1", 7000, b"id1", []], [b"10.0.0.4", 7003, b"id4", []]],
        [5461, 10922, [b"", 7001, b"id2"]],  # empty endpoint: the node we asked
        [10923, 16383, [None, 7002, b"id3"], [b"?", 7005, b"id6"]],  # nil and "?" too
    ]
    assert parse_cluster_slots(reply, "seed") == [
        SlotRange(0, 5460, ("10.0.0.1", 7000), (("10.0.0.4", 7003),)),
        SlotRange(5461, 10922, ("seed", 7001), ()),
        SlotRange(10923, 16383, ("seed", 7002), (("seed", 7005),)),
    ]


BAD_SLOTS_REPLIES = [
    RespError("ERR This instance has cluster support disabled"),
    b"OK",
    [[0, 16383]],  # no master
    [[0, 16384, [b"h", 1, b"id"]]],  # slot out of range
    [[5, 4, [b"h", 1, b"id"]]],  # backwards
    [[0, 16383, [b"h", b"1", b"id"]]],  # port not an integer
]


@pytest.mark.parametrize("reply", BAD_SLOTS_REPLIES)
def test_bad_cluster_slots_replies_raise_value_error(reply: object) -> None:
    with pytest.raises(ValueError):
        parse_cluster_slots(reply, "seed")


def test_uncovered_slots_are_counted() -> None:
    node = ("h", 1)
    assert uncovered([SlotRange(0, 16383, node, ())]) == 0
    assert uncovered([SlotRange(0, 99, node, ()), SlotRange(200, 16383, node, ())]) == 100
    assert uncovered([]) == 16384


# -- redirections ---------------------------------------------------------------------------


# (error reply, the redirection it is)
REDIRECTS = [
    ("MOVED 3999 127.0.0.1:6381", Redirect(False, 3999, ("127.0.0.1", 6381))),
    ("ASK 3999 10.0.0.2:6381", Redirect(True, 3999, ("10.0.0.2", 6381))),
    ("MOVED 3999 :6381", Redirect(False, 3999, ("asked", 6381))),  # unknown endpoint
    ("MOVED 1 [::1]:7000", Redirect(False, 1, ("::1", 7000))),
    ("MOVED 1 redis-3.example:7000", Redirect(False, 1, ("redis-3.example", 7000))),
    ("TRYAGAIN Multiple keys request during rehashing of slot", None),
    ("CLUSTERDOWN The cluster is down", None),
    ("MOVED 16384 h:1", None),  # no such slot
    ("MOVED x h:1", None),
    ("MOVED 1 h", None),  # no port
]


@pytest.mark.parametrize(("message", "expected"), REDIRECTS)
def test_redirections(message: str, expected: Redirect | None) -> None:
    assert parse_redirect(message, "asked") == expected


# -- start-up verdict -----------------------------------------------------------------------

WHOLE = [SlotRange(0, 16383, ("m", 1), (("r", 2),))]
NOEVICTION = [b"maxmemory-policy", b"noeviction"]
OK_INFO = b"cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"
ONE_REPLICA = b"# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"


def master(policy: object = NOEVICTION, info: bytes = OK_INFO) -> NodeReport:
    return NodeReport(("m", 1), True, [policy, info, ONE_REPLICA])


def replica(policy: object = NOEVICTION) -> NodeReport:
    return NodeReport(("r", 2), False, [policy, OK_INFO])


def test_a_whole_noeviction_cluster_passes() -> None:
    judge_cluster(WHOLE, [master(), replica()], allow_eviction=False, min_replicas=1)


def test_a_slot_without_master_is_unavailable() -> None:
    ranges = [SlotRange(0, 15999, ("m", 1), ())]
    with pytest.raises(StoreUnavailable, match="384 of 16384 slots"):
        judge_cluster(ranges, [master()], allow_eviction=True, min_replicas=0)


def test_a_master_not_ok_is_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="master m:1 says cluster_state 'fail'"):
        judge_cluster(WHOLE, [master(info=b"cluster_state:fail\r\n")], False, 0)


@pytest.mark.parametrize(
    ("reports", "names"),
    [
        ([master([b"maxmemory-policy", b"allkeys-lru"]), replica()], ["master m:1"]),
        ([master(), replica([b"maxmemory-policy", b"volatile-ttl"])], ["replica r:2"]),
        ([master(RespError("NOPERM")), replica()], ["master m:1", "not permitted"]),
    ],
)
def test_eviction_anywhere_is_refused_unless_allowed(
    reports: list[NodeReport], names: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="noeviction") as info:
        judge_cluster(WHOLE, reports, allow_eviction=False, min_replicas=0)
    assert all(name in str(info.value) for name in names)
    with caplog.at_level(logging.WARNING, logger="verifier.store.cluster"):
        judge_cluster(WHOLE, reports, allow_eviction=True, min_replicas=0)
    assert "VERIFIER_ALLOW_EVICTION" in caplog.text


def test_missing_replicas_are_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = NodeReport(("r", 2), False, error="ConnectionRefusedError")
    with caplog.at_level(logging.WARNING, logger="verifier.store.cluster"):
        judge_cluster(WHOLE, [master(), unreachable], allow_eviction=False, min_replicas=2)
    assert "replica r:2 was not checked" in caplog.text
    assert "master m:1 has 1 connected replicas, VERIFIER_MIN_REPLICAS is 2" in caplog.text
