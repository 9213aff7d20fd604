"""The store contract: one protocol, two implementations (Redis, in-memory).

The hot path is a single call, :meth:`Store.claim`, which atomically records the token's
nonce and reads the holder in one round trip. Everything else is administration.

Every store keeps records as the bytes of :mod:`verifier.codec` and reads them back with
:func:`claim_result` and :func:`read_record`, so a record in a shape the codec refuses is met
the same way by each: a claim still consumes the nonce and says the record was unreadable; an
admin read raises :class:`UnreadableRecord`.

Every claim that consumes a nonce also leaves a compact *use record* (who, with what request
id, when, through which gateway), kept for the store's reconcile window (at least as long as
the nonce): :meth:`Store.reconcile_claim` reads it to tell a gateway's offline acceptance from
a double use long after the token itself has expired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar

from verifier import codec
from verifier.errors import RecordError, StoreUnavailable
from verifier.records import Conflict, Gateway, Holder, Institution, Scanner
from verifier.store.identity import Forgetting

T = TypeVar("T")

NEW = "new"  # nonce was unused; it is now recorded for `claimant`
RETRY = "retry"  # nonce already claimed by the same claimant (same scanner + request id)
REPLAYED = "replayed"  # nonce already claimed by someone else (or without a request id)


class Claim(NamedTuple):  # a tuple: built for every claim, and cheaper so
    """Result of claiming a nonce.

    ``holder`` is the holder record as of the *first* claim when ``outcome`` is RETRY and
    the first claim carried a request id (so a retry gets the original verdict), the
    current record when NEW, and None when the holder is unknown or the outcome is REPLAYED.

    ``record_error`` is set (and ``holder`` is None) when that record is stored in a shape the
    records codec refuses: the nonce was consumed all the same. It says which field is wrong,
    never its value, so it may be logged.
    """

    outcome: str
    holder: Holder | None
    record_error: str | None = None


@dataclass(frozen=True, slots=True)
class PriorUse:
    """The first use of a nonce, as the store remembers it."""

    claimant: str  # the scanner
    request_id: str  # "" when none
    used_at: float | None  # Unix seconds; None for a nonce claimed before use records existed
    via: str  # the gateway that reconciled it; "" for a use at the centre


@dataclass(frozen=True, slots=True)
class Reconciled:
    """Result of :meth:`Store.reconcile_claim`. ``claim.holder`` is the holder record as it
    is *now* (None when unknown, or when the outcome is REPLAYED); ``first`` is the other use
    when the outcome is REPLAYED, else None."""

    claim: Claim
    first: PriorUse | None = None


def parse_use(value: bytes) -> PriorUse:
    """A use record ``claimant\\nrequest_id\\nused_at_ms\\nvia`` (used_at may be empty);
    StoreUnavailable if it has another shape."""
    parts = value.split(b"\n")
    if len(parts) == 4 and parts[0] and (not parts[2] or parts[2].isdigit()):
        claimant, rid, at, via = (p.decode("utf-8", "replace") for p in parts)
        return PriorUse(claimant, rid, int(at) / 1000 if at else None, via)
    raise StoreUnavailable(f"unexpected use record: {value!r:.200}")


class UnreadableRecord(RecordError, StoreUnavailable):
    """A stored record is in a shape the records codec refuses (another tool wrote it, or it
    is corrupt). A RecordError to an admin reading it; a StoreUnavailable to the service, which
    cannot authenticate on a scanner or institution record it cannot read (a 503, as for any
    store it cannot use). The message names the key and the field, never a value."""


def claim_result(outcome: str, holder: bytes | None) -> Claim:
    """The Claim for ``outcome`` and the stored holder bytes (None when there are none)."""
    if holder is None:
        return Claim(outcome, None)
    try:
        return Claim(outcome, codec.decode_holder(holder))
    except RecordError as err:
        return Claim(outcome, None, str(err))


def read_record(key: str, data: bytes, decode: Callable[[bytes], T]) -> T:
    """``decode(data)``, or UnreadableRecord naming ``key``."""
    try:
        return decode(data)
    except RecordError as err:
        raise UnreadableRecord(f"{key}: unreadable record: {err}") from err


class Store(Protocol):
    # How long a claim's use record is kept (at least as long as its nonce), in milliseconds:
    # the VERIFIER_RECONCILE_WINDOW setting. Older offline uses cannot be reconciled.
    reconcile_window_ms: int

    @property
    def forgotten_before(self) -> float | None:
        """When the store last found it may have forgotten claims (Unix seconds), or None.

        A node restarted or failed over, or its data was flushed: a nonce claimed before then
        may be free again, so a token issued before then cannot be told unused and is
        refused (``reissue_required``) until it expires. Found before any claim is answered
        from a node's new state, except a flush of a node whose connection stays up, found
        at the next periodic check (:mod:`verifier.store.identity`)."""
        ...

    @property
    def forgettings(self) -> list[Forgetting]:
        """The latest detections (when, which node, why), oldest first, for ``/metrics``."""
        ...

    async def claim(
        self, sub: str, jti: str, claimant: str, request_id: str | None, ttl_ms: int
    ) -> Claim:
        """Atomically consume nonce ``jti`` of holder ``sub`` and read the holder.

        ``claimant`` identifies the scanner; a later claim is a RETRY only if both claimant and
        a non-empty ``request_id`` match the first one. The nonce must be kept for at least
        ``ttl_ms`` milliseconds. Raises StoreUnavailable on any timeout or connection error;
        it must never report NEW unless the nonce is durably recorded.

        An unknown holder still consumes the nonce (NEW, holder None): the token was used, and
        enrolling the holder later must not make it usable again. So does a holder record (or
        the snapshot kept for a retry) that the codec refuses: the outcome as usual, holder None
        and ``record_error`` set, not an exception. Raises ValueError for an empty ``sub``/``jti``/``claimant``, braces in ``sub``, a newline in ``claimant`` or
        ``request_id``, or ``ttl_ms`` <= 0 (see :mod:`verifier.store.keys`).
        """
        ...

    async def put_holder(self, holder: Holder) -> None: ...
    async def put_holders(
        self, holders: Iterable[Holder], on_progress: Callable[[int], None] | None = None
    ) -> int:
        """Store many holders (in chunks); ``on_progress(n_done)`` after each. Returns the count."""
        ...

    async def get_holder(self, sub: str) -> Holder | None:
        """The record, None if there is none, UnreadableRecord if the codec refuses it (as
        ``get_institution`` and ``get_scanner``). Every ``put_*`` raises RecordError for a
        record the codec would refuse to read back, and stores nothing."""
        ...

    async def put_institution(self, inst: Institution) -> None: ...
    async def get_institution(self, inst_id: str) -> Institution | None: ...
    async def put_scanner(self, scanner: Scanner) -> None:
        """Store the record and add its id to its institution's directory (:meth:`scanners_of`)."""
        ...

    async def get_scanner(self, scanner_id: str) -> Scanner | None: ...
    async def scanners_of(self, inst_id: str) -> list[Scanner]:
        """Every scanner ever put for ``inst_id``, revoked ones too, ordered by id."""
        ...

    async def put_gateway(self, gateway: Gateway) -> None:
        """Store the record and add its id to its institution's list (:meth:`gateways_of`)."""
        ...

    async def get_gateway(self, gateway_id: str) -> Gateway | None: ...
    async def gateways_of(self, inst_id: str) -> list[Gateway]:
        """Every gateway ever put for ``inst_id``, revoked ones too, ordered by id."""
        ...

    async def reconcile_claim(
        self,
        sub: str,
        jti: str,
        claimant: str,
        request_id: str,
        via: str,
        used_at: float,
        ttl_ms: int,
    ) -> Reconciled:
        """Claim nonce ``jti`` for a use accepted offline at ``used_at`` through gateway ``via``.

        Atomically: if the nonce has a use (record or live nonce), the outcome is RETRY when it
        was by the same ``claimant`` with the same non-empty ``request_id`` (a forward that
        timed out, or this item sent again), else REPLAYED with that use as ``first``.
        Otherwise the use is recorded (NEW): a use record kept for the reconcile window, and,
        when ``ttl_ms`` > 0 (the token can still be presented), the nonce too, so that the
        token is replayed at the centre. Raises ValueError for an empty ``request_id``, a
        newline in ``via``, a negative ``ttl_ms``, or what :meth:`claim` refuses.
        """
        ...

    async def add_conflict(self, conflict: Conflict) -> None:
        """Record a double use; the same conflict found again is kept once, at its first time."""
        ...

    async def conflicts(self, since: float = 0.0) -> list[Conflict]:
        """Conflicts found at or after ``since`` (Unix seconds), oldest first."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers now."""
        ...

    async def close(self) -> None: ...
