"""The pure pieces of forgetting detection on a cluster: the flush count read from
``INFO commandstats`` and the per-master key a detection is recorded under."""

from __future__ import annotations

import pytest

from verifier.store.cluster_identity import forgotten_key
from verifier.store.identity import flush_count, parse_greeting, what_changed
from verifier.store.resp import ConnectionDown
from verifier.store.slots import SlotRange, key_slot

STATS = (
    b"# Commandstats\r\n"
    b"cmdstat_set:calls=10,usec=20,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n"
    b"cmdstat_flushall:calls=2,usec=9,usec_per_call=4.50,rejected_calls=1,failed_calls=0\r\n"
    b"cmdstat_flushdb:calls=1,usec=3,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n"
)
SERVER = b"# Server\r\nredis_version:7.0.15\r\nrun_id:abc\r\n"
REPLICATION = b"# Replication\r\nrole:master\r\nmaster_replid:r1\r\n"


def test_flush_count_adds_flushall_and_flushdb_calls_only() -> None:
    assert flush_count(STATS) == b"flushes:3"
    assert flush_count(b"# Commandstats\r\ncmdstat_get:calls=5,usec=1\r\n") == b"flushes:0"
    assert flush_count(b"") == b"flushes:0"


def test_a_flush_between_two_reads_is_a_detection() -> None:
    before, _ = parse_greeting([SERVER, REPLICATION, STATS])
    after, _ = parse_greeting([SERVER, REPLICATION, STATS.replace(b"calls=2", b"calls=3")])
    same, _ = parse_greeting([SERVER, REPLICATION, STATS])
    assert what_changed(before, same) is None
    assert what_changed(before, after) == "flushed (marker key gone)"


def test_an_unreadable_identity_carries_no_claim() -> None:
    with pytest.raises(ConnectionDown):
        parse_greeting([SERVER, REPLICATION])
    with pytest.raises(ConnectionDown):
        parse_greeting([b"# Server\r\n", REPLICATION, STATS])  # no run_id


def test_forgotten_key_lies_in_a_slot_of_its_master() -> None:
    a, b = ("10.0.0.1", 7000), ("10.0.0.2", 7000)
    ranges = [SlotRange(0, 99, a, ()), SlotRange(100, 16383, b, ()), SlotRange(12000, 12000, b, ())]
    for master, (low, high) in ((a, (0, 99)), (b, (100, 16383))):
        key = forgotten_key(ranges, master)
        assert key is not None and low <= key_slot(key.encode()) <= high
    lone = [SlotRange(4242, 4242, a, ())]  # one slot: still found
    key = forgotten_key(lone, a)
    assert key is not None and key_slot(key.encode()) == 4242
    assert forgotten_key(ranges, ("10.0.0.3", 7000)) is None
