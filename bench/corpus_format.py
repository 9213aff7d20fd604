"""The corpus: what ``bench run`` sends and what it expects back. Format version 1.

A corpus is a directory with two files. ``requests.bin`` is written first, ``manifest.json``
last, so a directory without a manifest is an incomplete corpus and is refused.

``manifest.json`` (UTF-8 JSON object)::

    {"format": "qr-bench-corpus",      # required, exactly this
     "schema_version": 1,              # required, exactly 1
     "count": 100000,                  # required: number of records in requests.bin
     "content_sha256": "<64 hex>",     # required: SHA-256 of the whole requests.bin file
     "records": "requests.bin",        # required: file name of the records
     "verdicts": {"ok": 90000, …},     # optional: count per expected verdict
     "generator": {…}}                 # optional, free-form provenance (tool, seed, keys …)

``requests.bin`` (binary, little-endian)::

    magic    8 bytes   b"QRBENCH1"
    count × record:
      body_len      u32     length of the HTTP request body
      ctype_len     u8      length of the Content-Type value (1..255)
      expected_len  u8      length of the expected verdict (1..255)
      ctype         ASCII   e.g. "text/plain" (raw token) or "application/json"
      expected      ASCII   e.g. "ok", "replayed", "expired", "bad_signature", "http_400"
      body          bytes   the exact request body (any bytes, may be empty)

The *expected verdict* is what the oracle compares with each response: the ``reason`` of a
``200`` JSON body, or ``"http_<status>"`` for any other status (see ``bench.http1``).

How the bench uses a corpus (what a generator can rely on):

* Every record is sent at most once per run, in file order within its shard.
* With ``--processes P``, process ``p`` sends the contiguous block of records
  ``[p*count//P, (p+1)*count//P)`` (:func:`shard_bounds`). When a process reaches the end of
  its block the run stops and is marked invalid ("corpus exhausted").
* A record expected to be ``"replayed"`` must come *after* the record that first uses its
  token, in the same shard block, and far enough behind it (1000 records is ample) that the
  first use has been answered before the replay is sent.

* ``bench find-max`` gives each of its trial runs its own consecutive, disjoint slice of
  the corpus, so a corpus for it must hold enough records for all trials.

Use :func:`write_corpus` to produce a corpus and :func:`read_corpus` to load records.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "qr-bench-corpus"
SCHEMA_VERSION = 1
MAGIC = b"QRBENCH1"
MANIFEST = "manifest.json"
RECORDS = "requests.bin"
_HEADER = struct.Struct("<IBB")


class CorpusError(ValueError):
    """The corpus directory is missing, incomplete, or does not match its manifest."""


@dataclass(frozen=True)
class CorpusEntry:
    """One request to send: its body, its Content-Type, and the verdict expected back."""

    body: bytes
    content_type: str
    expected: str


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json``."""

    count: int
    content_sha256: str
    records: str = RECORDS
    verdicts: Mapping[str, int] = field(default_factory=dict)
    generator: Mapping[str, Any] = field(default_factory=dict)


def shard_bounds(count: int, shard: int, shards: int) -> tuple[int, int]:
    """Half-open range of record indexes that process *shard* of *shards* sends."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} out of range for {shards} shards")
    return shard * count // shards, (shard + 1) * count // shards


def encode_record(entry: CorpusEntry) -> bytes:
    """The bytes of one record in ``requests.bin``."""
    ctype = entry.content_type.encode("ascii")
    expected = entry.expected.encode("ascii")
    if not 0 < len(ctype) < 256 or not 0 < len(expected) < 256:
        raise CorpusError("content type and expected verdict must be 1..255 ASCII bytes")
    if len(entry.body) >= 1 << 32:
        raise CorpusError("body longer than 4 GiB")
    return _HEADER.pack(len(entry.body), len(ctype), len(expected)) + ctype + expected + entry.body


def write_corpus(
    directory: Path, entries: Iterable[CorpusEntry], generator: Mapping[str, Any] | None = None
) -> Manifest:
    """Write *entries* as a corpus in *directory* (created if needed); return its manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    digest = hashlib.sha256(MAGIC)
    verdicts: Counter[str] = Counter()
    with open(directory / RECORDS, "wb") as out:
        out.write(MAGIC)
        for entry in entries:
            record = encode_record(entry)
            out.write(record)
            digest.update(record)
            verdicts[entry.expected] += 1
    manifest = Manifest(
        count=sum(verdicts.values()),
        content_sha256=digest.hexdigest(),
        verdicts=dict(sorted(verdicts.items())),
        generator=dict(generator or {}),
    )
    document = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "count": manifest.count,
        "content_sha256": manifest.content_sha256,
        "records": manifest.records,
        "verdicts": manifest.verdicts,
        "generator": manifest.generator,
    }
    (directory / MANIFEST).write_text(json.dumps(document, indent=2) + "\n")
    return manifest


def read_manifest(directory: Path) -> Manifest:
    """Parse and check ``manifest.json``; raises :class:`CorpusError` naming the bad key."""
    try:
        document = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError as err:
        raise CorpusError(f"{directory}: no {MANIFEST} (not a corpus, or incomplete)") from err
    except json.JSONDecodeError as err:
        raise CorpusError(f"{directory / MANIFEST}: not JSON: {err}") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CorpusError(f"{directory / MANIFEST}: 'format' must be {FORMAT!r}")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise CorpusError(f"{directory / MANIFEST}: unsupported 'schema_version'")
    count, sha, records = (document.get(k) for k in ("count", "content_sha256", "records"))
    if not isinstance(count, int) or count < 0:
        raise CorpusError(f"{directory / MANIFEST}: 'count' must be a non-negative integer")
    if not isinstance(sha, str) or len(sha) != 64:
        raise CorpusError(f"{directory / MANIFEST}: 'content_sha256' must be 64 hex digits")
    if not isinstance(records, str) or "/" in records:
        raise CorpusError(f"{directory / MANIFEST}: 'records' must be a plain file name")
    return Manifest(
        count, sha, records, document.get("verdicts", {}), document.get("generator", {})
    )


def read_corpus(
    directory: Path, start: int = 0, stop: int | None = None, *, verify: bool = True
) -> tuple[Manifest, list[CorpusEntry]]:
    """Load records ``[start, stop)`` (all by default), checking the manifest.

    With *verify*, the file's SHA-256 and record count must match the manifest.
    """
    manifest = read_manifest(directory)
    data = (directory / manifest.records).read_bytes()
    if not data.startswith(MAGIC):
        raise CorpusError(f"{directory / manifest.records}: bad magic (expected {MAGIC!r})")
    if verify and hashlib.sha256(data).hexdigest() != manifest.content_sha256:
        raise CorpusError(f"{directory / manifest.records}: SHA-256 does not match manifest")
    first, stop = start, manifest.count if stop is None else stop
    if not 0 <= first <= stop <= manifest.count:
        raise CorpusError(f"records [{first}, {stop}) outside the corpus of {manifest.count}")
    entries: list[CorpusEntry] = []
    offset, index, unpack = len(MAGIC), 0, _HEADER.unpack_from
    while offset < len(data) and index < stop:
        if offset + _HEADER.size > len(data):
            raise CorpusError(f"record {index}: truncated header")
        body_len, ctype_len, expected_len = unpack(data, offset)
        start = offset + _HEADER.size
        end = start + ctype_len + expected_len + body_len
        if end > len(data):
            raise CorpusError(f"record {index}: truncated")
        if index >= first:
            ctype = data[start : start + ctype_len].decode("ascii")
            expected = data[start + ctype_len : start + ctype_len + expected_len].decode("ascii")
            entries.append(CorpusEntry(data[end - body_len : end], ctype, expected))
        offset, index = end, index + 1
    if index < stop or (verify and stop == manifest.count and offset != len(data)):
        raise CorpusError(f"{directory}: requests.bin does not hold 'count' records")
    return manifest, entries
