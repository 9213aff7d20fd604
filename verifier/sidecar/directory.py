"""The scanner directory a sidecar keeps: its institution's scanners, synced from the centre.

Offline, the sidecar cannot ask the centre who a scanner is, so it keeps what
``GET /v1/gateway/scanners`` last said (the institution's record and each scanner's id,
credential hash and state; never a secret) in memory and in a file beside the journal, read
back at start. A scanner revoked at the centre is refused here once a sync has seen it.

:class:`GatewayScanners` is how the endpoint admits scanners at a sidecar
(:class:`verifier.service.endpoint.Admission`):

- a credential the directory knows is checked against its hash: 401 if it does not match,
  403 if the scanner is revoked;
- a credential the directory does not know yet (a scanner added at the centre since the
  last sync) is let through *while the centre answers*, marked ``known=False``: the forward
  carries it and the centre decides. Offline it is 401.

Either way the admitted :class:`Presented` scanner carries its ``Authorization`` header, which
the online path forwards as it is.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from verifier import codec
from verifier.credentials import hash_secret, parse_bearer
from verifier.errors import SCANNER_REVOKED, UNAUTHORIZED, RecordError, StoreUnavailable
from verifier.records import Institution, Scanner
from verifier.service.auth import AuthError

_MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class Presented(Scanner):
    """A scanner as it presented itself: its record and the header to forward."""

    authorization: str = field(default="", repr=False)
    known: bool = True  # False: not in the directory yet; only the centre can admit it


@dataclass(frozen=True)
class Directory:
    """One institution's scanners, as the centre last listed them."""

    institution: Institution | None = None
    scanners: dict[str, Scanner] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Any) -> Directory:
        """Read ``{"institution": {...}, "scanners": [{...}, ...]}`` (the centre's answer and
        the file's content) with the records codec; RecordError on anything else."""
        if type(doc) is not dict:
            raise RecordError("scanner directory: expected a JSON object")
        rows = doc.get("scanners")
        if type(rows) is not list:
            raise RecordError("scanner directory: scanners must be a list")
        if doc.get("institution") is None:  # the centre has no record of the institution
            return cls()
        inst = codec.institution_from_json(doc.get("institution"))
        scanners = {}
        for row in rows:
            if type(row) is dict and "institution" not in row:
                row = {**row, "institution": inst.id}
            sc = codec.scanner_from_json(row)
            if sc.institution != inst.id:
                raise RecordError("scanner directory: a scanner of another institution")
            scanners[sc.id] = sc
        return cls(inst, scanners)

    def to_json(self) -> dict[str, Any]:
        return {
            "institution": None
            if self.institution is None
            else codec.institution_to_json(self.institution),
            "scanners": [codec.scanner_to_json(s) for s in self.scanners.values()],
        }

    @classmethod
    def load(cls, path: Path) -> Directory:
        """The directory saved at ``path``; an empty one when there is no file yet."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as err:
            raise RecordError(f"{path}: {err.strerror}") from err
        try:
            return cls.from_json(orjson.loads(data))
        except (orjson.JSONDecodeError, RecordError) as err:
            raise RecordError(f"{path}: unreadable scanner directory: {err}") from err

    def save(self, path: Path) -> None:
        """Write atomically; owner-readable only."""
        write_atomically(path, orjson.dumps(self.to_json()), 0o600)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` whole or not at all: a temporary file, fsync, rename."""
    tmp = path.with_name(path.name + ".tmp")
    with os.fdopen(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class GatewayScanners:
    """Admits scanners from the directory (see the module docstring)."""

    def __init__(self, directory: Directory, online: Callable[[], bool]) -> None:
        self.directory = directory
        self._online = online
        self._accepted: dict[str, tuple[Presented, Institution | None]] = {}

    def replace(self, directory: Directory) -> None:
        """A newer directory from the centre: in force for the next request."""
        self.directory = directory
        self._accepted = {}

    def cached(self, header: str | None) -> tuple[Scanner, Institution | None] | None:
        return self._accepted.get(header) if header is not None else None

    async def authenticate(self, header: str | None) -> tuple[Scanner, Institution | None]:
        parsed = parse_bearer(header)
        if parsed is None or header is None:
            raise AuthError(UNAUTHORIZED, "missing or malformed bearer credential")
        scanner_id, secret = parsed
        d = self.directory
        known = d.scanners.get(scanner_id)
        if known is not None and hmac.compare_digest(known.secret_hash, hash_secret(secret)):
            if known.revoked:
                raise AuthError(SCANNER_REVOKED, "this scanner credential has been revoked")
            admitted = (
                Presented(known.id, known.institution, known.secret_hash, False, header),
                d.institution,
            )
            if len(self._accepted) >= _MAX_CACHED:
                self._accepted.clear()
            self._accepted[header] = admitted
            return admitted
        if known is None and self._online():
            inst_id = d.institution.id if d.institution else ""
            return Presented(scanner_id, inst_id, "", False, header, known=False), d.institution
        raise AuthError(UNAUTHORIZED, "unknown scanner credential")

    async def ping(self) -> None:
        """StoreUnavailable while no directory was ever synced and the centre does not answer
        (no scanner can be admitted); part of the sidecar's readiness."""
        if self.directory.institution is None and not self._online():
            raise StoreUnavailable("no scanner directory yet and the centre does not answer")
