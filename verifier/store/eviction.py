"""Whether a Redis may evict nonces: its ``maxmemory-policy``, at start and while running.

An evicted nonce lets its token be accepted again; under ``noeviction`` a full Redis refuses
writes instead, and claims fail closed. So the stores refuse, at start, a node whose policy is
anything else, or cannot be read (managed Redis, ACLs without ``+config|get``), unless the
operator sets ``VERIFIER_ALLOW_EVICTION`` (then it is a logged warning). A single-node store
also reads the policy again while it runs (:class:`PolicyWatch`, for the readiness probe).
"""

from __future__ import annotations

import logging
import time

from verifier.errors import ConfigError
from verifier.store.resp import RespError

log = logging.getLogger("verifier.store")

# The setting an operator flips to run on an evicting Redis anyway.
ALLOW_EVICTION_SETTING = "VERIFIER_ALLOW_EVICTION"
POLICY_COMMAND = ("CONFIG", "GET", "maxmemory-policy")
_WHY = (
    "the verifier needs 'noeviction'{where}, because an evicted nonce would let its token be "
    "accepted twice"
)


def eviction_problem(reply: object) -> str | None:
    """None when a reply to CONFIG GET maxmemory-policy says ``noeviction``, else why not."""
    if isinstance(reply, dict):  # RESP3
        reply = [item for pair in reply.items() for item in pair]
    if isinstance(reply, RespError):
        return (
            f"CONFIG GET is not permitted on this Redis ({reply}), so its "
            "maxmemory-policy cannot be checked (an ACL user needs +config|get)"
        )
    if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes):
        policy = reply[1].decode(errors="replace")
        return None if policy == "noeviction" else f"Redis maxmemory-policy is {policy!r}"
    return f"unexpected reply to CONFIG GET maxmemory-policy: {reply!r:.100}"


def refuse_eviction(problem: str, allow_eviction: bool, every_node: bool = False) -> None:
    """At start: ConfigError for ``problem``, or with ``allow_eviction`` a logged warning."""
    why = _WHY.format(where=" on every node" if every_node else "")
    message = f"{problem}; {why}. Set {ALLOW_EVICTION_SETTING} to run anyway."
    if not allow_eviction:
        raise ConfigError(message)
    log.warning("%s (allowed by %s)", message, ALLOW_EVICTION_SETTING)


class PolicyWatch:
    """The policy of a running node, found ``noeviction`` at start: read again at most every
    ``recheck`` seconds. An operator who switches it to an evicting one while the service runs
    makes the service not ready (logged once, and once more when it is back)."""

    def __init__(self) -> None:
        self.on = False  # set by started(): not when eviction is allowed
        self.read_at = 0.0
        self.problem: str | None = None  # the last finding; it stands between reads

    def started(self, allow_eviction: bool) -> None:
        """The start-up check found ``noeviction``."""
        self.on = not allow_eviction
        self.read_at = time.monotonic()

    def due(self, recheck: float) -> bool:
        """Whether to read the policy again now (and, if so, from now on it was read)."""
        now = time.monotonic()
        if not self.on or now - self.read_at < recheck:
            return False
        self.read_at = now
        return True

    def update(self, reply: object) -> str | None:
        """Take in a new reply to CONFIG GET maxmemory-policy; the problem, or None."""
        problem = eviction_problem(reply)
        if problem != self.problem:
            if problem is None:
                log.warning("Redis maxmemory-policy is 'noeviction' again; ready")
            else:
                log.error("%s; %s: not ready until it is set back", problem, _WHY.format(where=""))
        self.problem = problem
        return problem
