"""The Lua script behind :meth:`RedisStore.claim`: consume a nonce and read its holder atomically.

KEYS[1]  holder key ``vh:{sub}``          ARGV[1]  claimant (scanner id, no newline)
KEYS[2]  nonce key ``vn:{sub}:jti``       ARGV[2]  request id, "" for none (no newline)
                                          ARGV[3]  nonce time to live, milliseconds (> 0)

1. Read the holder record (false when unknown).
2. ``SET nonce "<claimant>\\n<request_id>[\\n<holder>] NX PX ttl"``; the holder snapshot is
   appended only when a request id is given and the holder is known. If the SET took, the
   reply is ``{"new", holder}``: an unknown holder still consumes the nonce.
3. Otherwise, with a non-empty request id, a stored value starting with the same
   ``"<claimant>\\n<request_id>"`` (and nothing or a newline after it) is a retry of the
   first claim: ``{"retry", snapshot}`` (the snapshot may be absent).
4. Anything else is ``{"replayed", false}``.

Redis runs a script without interleaving other commands, so of N concurrent claims of one
nonce exactly one sees the SET take.
"""

from __future__ import annotations

import hashlib

from verifier.errors import StoreUnavailable
from verifier.store.base import NEW, REPLAYED, RETRY

CLAIM_LUA = """\
local holder = redis.call('GET', KEYS[1])
local head = ARGV[1] .. '\\n' .. ARGV[2]
local value = head
if ARGV[2] ~= '' and holder then
  value = head .. '\\n' .. holder
end
if redis.call('SET', KEYS[2], value, 'NX', 'PX', ARGV[3]) then
  return {'new', holder}
end
if ARGV[2] ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev == head then
    return {'retry', false}
  end
  if string.sub(prev, 1, #head + 1) == head .. '\\n' then
    return {'retry', string.sub(prev, #head + 2)}
  end
end
return {'replayed', false}
"""

CLAIM_SHA = hashlib.sha1(CLAIM_LUA.encode()).hexdigest()

_OUTCOMES = {b"new": NEW, b"retry": RETRY, b"replayed": REPLAYED}


def parse_claim_reply(reply: object) -> tuple[str, bytes | None]:
    """Return (outcome, holder JSON or None); StoreUnavailable for any other shape."""
    if isinstance(reply, list) and len(reply) == 2:
        tag, holder = reply
        outcome = _OUTCOMES.get(tag) if isinstance(tag, bytes) else None
        if outcome is not None and (holder is None or isinstance(holder, bytes)):
            if outcome != REPLAYED or holder is None:
                return outcome, holder
    raise StoreUnavailable(f"unexpected reply to the claim script: {reply!r:.200}")
