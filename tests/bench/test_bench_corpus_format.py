"""The corpus format: exact bytes, round trip, manifest checks, sharding."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bench.corpus_format import (
    MAGIC,
    CorpusEntry,
    CorpusError,
    encode_record,
    read_corpus,
    read_manifest,
    shard_bounds,
    write_corpus,
)

ENTRIES = [
    CorpusEntry(b"v4.public.AAAA", "text/plain", "ok"),
    CorpusEntry(b'{"token":"v4.public.BBBB"}', "application/json", "ok"),
    CorpusEntry(b"v4.public.AAAA", "text/plain", "replayed"),
    CorpusEntry(b"", "text/plain", "http_400"),
    CorpusEntry(bytes(range(256)), "application/octet-stream", "http_415"),
]


def test_record_known_answer() -> None:
    record = encode_record(CorpusEntry(b"tok", "text/plain", "ok"))
    assert record == b"\x03\x00\x00\x00" + b"\x0a" + b"\x02" + b"text/plain" + b"ok" + b"tok"


def test_round_trip_and_manifest(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path, ENTRIES, generator={"tool": "test", "seed": 1})
    data = (tmp_path / "requests.bin").read_bytes()
    assert data.startswith(MAGIC)
    assert manifest.content_sha256 == hashlib.sha256(data).hexdigest()
    document = json.loads((tmp_path / "manifest.json").read_text())
    assert document["format"] == "qr-bench-corpus"
    assert document["schema_version"] == 1
    assert document["count"] == 5
    assert document["verdicts"] == {"http_400": 1, "http_415": 1, "ok": 2, "replayed": 1}
    assert document["generator"] == {"tool": "test", "seed": 1}
    assert read_manifest(tmp_path) == manifest
    _, entries = read_corpus(tmp_path)
    assert entries == ENTRIES


def test_slices(tmp_path: Path) -> None:
    write_corpus(tmp_path, ENTRIES)
    assert read_corpus(tmp_path, 1, 3)[1] == ENTRIES[1:3]
    assert read_corpus(tmp_path, 5, 5)[1] == []
    with pytest.raises(CorpusError, match="outside"):
        read_corpus(tmp_path, 2, 6)


@pytest.mark.parametrize(("count", "shards"), [(10, 1), (10, 3), (7, 7), (3, 5), (0, 2)])
def test_shards_cover_each_record_exactly_once(count: int, shards: int) -> None:
    covered: list[int] = []
    for shard in range(shards):
        first, stop = shard_bounds(count, shard, shards)
        covered += range(first, stop)
    assert covered == list(range(count))


def test_missing_manifest_means_incomplete(tmp_path: Path) -> None:
    write_corpus(tmp_path, ENTRIES)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(CorpusError, match="no manifest.json"):
        read_corpus(tmp_path)


def test_tampered_records_are_refused(tmp_path: Path) -> None:
    write_corpus(tmp_path, ENTRIES)
    path = tmp_path / "requests.bin"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match="SHA-256"):
        read_corpus(tmp_path)
    assert read_corpus(tmp_path, verify=False)[1][-1].body != ENTRIES[-1].body


def test_count_mismatch_is_refused(tmp_path: Path) -> None:
    write_corpus(tmp_path, ENTRIES)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["count"] = 6
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError):
        read_corpus(tmp_path, verify=False)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("format", "other", "format"),
        ("schema_version", 2, "schema_version"),
        ("count", -1, "count"),
        ("content_sha256", "abc", "content_sha256"),
        ("records", "../x", "records"),
    ],
)
def test_manifest_errors_name_the_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    write_corpus(tmp_path, ENTRIES)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest[key] = value
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError, match=message):
        read_manifest(tmp_path)


def test_field_limits() -> None:
    with pytest.raises(CorpusError):
        encode_record(CorpusEntry(b"x", "", "ok"))
    with pytest.raises(CorpusError):
        encode_record(CorpusEntry(b"x", "text/plain", "x" * 256))
