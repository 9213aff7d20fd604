"""The circuit breaker between the sidecar and the centre: when to forward, when to go offline.

States and transitions (``now`` is always passed in; nothing here reads a clock)::

                 K failures in a row                  probe or forward answers
    CLOSED ───────────────────────────────▶ OPEN ───────────────────────────────▶ CLOSED
    (forward every request)          (no forwards; a background probe every interval)

- A *failure* is a connection error, a timeout or a 5xx from the centre; any other answer
  (2xx, 4xx) is a *success*: the centre answered. A success resets the count and closes.
- ``offline_since`` is the time of the first failure of the current run: from then on the
  centre has not answered. It is cleared by the next success.
- The request whose forward failed goes offline at once (its scan waited one timeout); while
  OPEN, new requests go offline without trying the centre.
- ``VERIFIER_OFFLINE_MAX_AGE``: offline acceptance is allowed only while
  ``now - offline_since < max_offline_ms``. After that the offline path answers 503: a centre
  unreachable for that long is an outage to fix, not a reason to accept cards unchecked.
- A gateway credential the centre refused (401/403 to a sync or a reconcile: revoked, or
  not known there) allows no offline acceptance at all until a later sync is accepted: the
  sidecar no longer acts for its institution, and its journal could not be reconciled.

Route of a new request, :meth:`Breaker.route`: FORWARD (closed), OFFLINE (open, young enough)
or REFUSE (open, too old). After a failed forward, :meth:`Breaker.failed` records the failure
and returns OFFLINE or REFUSE for that request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from verifier.service.logs import event

log = logging.getLogger("verifier.sidecar")

CLOSED = "closed"
OPEN = "open"

FORWARD = "forward"  # send the request to the centre
OFFLINE = "offline"  # decide locally and journal
REFUSE = "refuse"  # offline for too long: 503


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """How many failures open the breaker, how often to probe, how long offline may last."""

    failures_to_open: int = 3
    probe_interval_ms: int = 1_000
    max_offline_ms: int = 12 * 3_600_000  # VERIFIER_OFFLINE_MAX_AGE (12h); 0: never offline

    def __post_init__(self) -> None:
        if self.failures_to_open < 1 or self.probe_interval_ms < 1 or self.max_offline_ms < 0:
            raise ValueError(
                "breaker: failures_to_open and probe_interval_ms must be >= 1, max_offline_ms >= 0"
            )


class Breaker:
    """The breaker's state. Not thread-safe; one per sidecar, used from its event loop."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = CLOSED
        self.failures = 0  # consecutive failures so far
        self.offline_since: int | None = None  # ms; first failure of the current run
        self.next_probe_at: int | None = None  # ms; set while OPEN
        self.refused: str | None = None  # why the centre refused the gateway credential

    def route(self, now_ms: int) -> str:
        """Where a new request goes: FORWARD, OFFLINE or REFUSE."""
        if self.state == CLOSED:
            return FORWARD
        return OFFLINE if self.offline_allowed(now_ms) else REFUSE

    def failed(self, now_ms: int) -> str:
        """A forward failed: record it; where that request goes now (OFFLINE or REFUSE)."""
        self.record_failure(now_ms)
        return OFFLINE if self.offline_allowed(now_ms) else REFUSE

    def offline_allowed(self, now_ms: int) -> bool:
        """May a scan be accepted offline at ``now_ms``? (max-age rule, credential refused)"""
        return self.refused is None and not self.too_long_offline(now_ms)

    def too_long_offline(self, now_ms: int) -> bool:
        """Offline for longer than ``max_offline_ms``: every offline scan is 503."""
        since = self.offline_since
        return since is not None and now_ms - since >= self.policy.max_offline_ms

    def refusal(self) -> str:
        """Why a scan that cannot be forwarded is not accepted offline (REFUSE), for the 503."""
        if self.refused is not None:
            return (
                "the central service does not answer and has refused this gateway's "
                "credential, so no scan is accepted offline; retry"
            )
        return (
            "the central service has been unreachable for longer than offline acceptance "
            "is allowed (VERIFIER_OFFLINE_MAX_AGE); retry"
        )

    def credential_refused(self, why: str) -> None:
        """The centre answered 401/403 to the gateway credential: no offline acceptance."""
        if self.refused is None:
            log.error(
                "the central service refused this gateway's credential (%s): scans are "
                "forwarded, none is accepted offline, the journal is not reconciled; issue a "
                "new one with `verifier gateways add` and set VERIFIER_GATEWAY_CREDENTIAL",
                why,
            )
        self.refused = why

    def credential_accepted(self) -> None:
        """A sync with the gateway credential worked."""
        if self.refused is not None:
            log.warning("the central service accepts this gateway's credential again")
        self.refused = None

    def record_failure(self, now_ms: int) -> None:
        """A forward or a probe failed (connection error, timeout, 5xx)."""
        self.failures += 1
        if self.offline_since is None:
            self.offline_since = now_ms
        if self.state == CLOSED and self.failures >= self.policy.failures_to_open:
            self.state = OPEN
            event(
                log,
                logging.WARNING,
                "upstream_down",
                "the central service does not answer: offline; scans are decided here and "
                "journalled until a probe gets an answer",
            )
        if self.state == OPEN:
            self.next_probe_at = now_ms + self.policy.probe_interval_ms

    def record_success(self, now_ms: int) -> None:
        """The centre answered (a forward or a probe): close and forget the failures."""
        self.state = CLOSED
        self.failures = 0
        self.offline_since = None
        self.next_probe_at = None

    def probe_delay(self, now_ms: int) -> int | None:
        """Milliseconds until the next probe is due (0: now); None while CLOSED (no probing)."""
        if self.state == CLOSED or self.next_probe_at is None:
            return None
        return max(0, self.next_probe_at - now_ms)

    def status(self) -> dict[str, object]:
        """``{"mode": "online"|"offline", "offline_since": ms or None}`` for the status route:
        offline from the first call to the centre that failed (a scan's forward, a probe, a
        sync) until one succeeds, whether or not the breaker has opened yet."""
        return {
            "mode": "online" if self.offline_since is None else "offline",
            "offline_since": self.offline_since,
        }
