"""The Lua script behind :meth:`RedisStore.claim`: consume a nonce and read its holder atomically.

KEYS[1]  holder key ``vh:{sub}``          ARGV[1]  claimant (scanner id, no newline)
KEYS[2]  nonce key ``vn:{sub}:jti``       ARGV[2]  request id, "" for none (no newline)
KEYS[3]  use key ``vu:{sub}:jti``         ARGV[3]  nonce time to live, milliseconds (> 0)
         (optional)                       ARGV[4]  use record time to live, ms (with KEYS[3])
                                          ARGV[5]  now, Unix milliseconds (with KEYS[3])

1. Read the holder record (false when unknown).
2. ``SET nonce "<claimant>\\n<request_id>[\\n<holder>] NX PX ttl"``; the holder snapshot is
   appended only when a request id is given and the holder is known. If the SET took, the
   use record ``"<claimant>\\n<request_id>\\n<now>\\n"`` is set too (NX, when KEYS[3] is
   given) and the reply is ``{"new", holder}``: an unknown holder still consumes the nonce.
3. Otherwise, with a non-empty request id, a stored value starting with the same
   ``"<claimant>\\n<request_id>"`` (and nothing or a newline after it) is a retry of the
   first claim: ``{"retry", snapshot}`` (the snapshot may be absent).
4. Anything else is ``{"replayed", false}``.

Redis runs a script without interleaving other commands, so of N concurrent claims of one
nonce exactly one sees the SET take.
"""

from __future__ import annotations

import hashlib
import time

from verifier.errors import StoreUnavailable
from verifier.store.base import NEW, REPLAYED, RETRY
from verifier.store.keys import HOLDER_PREFIX, NONCE_PREFIX, USE_PREFIX

CLAIM_LUA = """\
local holder = redis.call('GET', KEYS[1])
local head = ARGV[1] .. '\\n' .. ARGV[2]
local value = head
if ARGV[2] ~= '' and holder then
  value = head .. '\\n' .. holder
end
if redis.call('SET', KEYS[2], value, 'NX', 'PX', ARGV[3]) then
  if KEYS[3] then
    redis.call('SET', KEYS[3], head .. '\\n' .. ARGV[5] .. '\\n', 'NX', 'PX', ARGV[4])
  end
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


_HOLDER, _NONCE, _USE = HOLDER_PREFIX.encode(), NONCE_PREFIX.encode(), USE_PREFIX.encode()


def claim_prefix(command: str, script: str) -> bytes:
    """``EVALSHA <sha> 3`` or ``EVAL <script> 3``, packed: what :func:`claim_args` follows."""
    name, body = command.encode(), script.encode()
    return b"*11\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$1\r\n3\r\n" % (len(name), name, len(body), body)


def claim_args(
    sub: str, jti: str, claimant: str, request_id: str | None, ttl_ms: int, keep: bytes
) -> bytes:
    """The claim script's three keys and five arguments, packed (after a :func:`claim_prefix`).

    The caller has checked the arguments (:func:`verifier.store.keys.check_claim_args`).
    ``keep``: the use record's time to live in ms (the reconcile window, or the nonce's when
    longer); "now" is read here.
    """
    tag = b"{%s}" % sub.encode()  # the keys of keys.py, without checking sub again
    hk, nk = _HOLDER + tag, b"%s%s:%s" % (_NONCE, tag, jti.encode())
    uk = _USE + nk[len(_NONCE) :]
    cl, rid, ttl = claimant.encode(), (request_id or "").encode(), b"%d" % ttl_ms
    now = b"%d" % (time.time_ns() // 1_000_000)
    return (
        b"$%d\r\n%s\r\n"
        * 8
        % (
            *(len(hk), hk, len(nk), nk, len(uk), uk, len(cl), cl),
            *(len(rid), rid, len(ttl), ttl, len(keep), keep, len(now), now),
        )
    )


# Behind :meth:`RedisStore.reconcile_claim` (not the hot path): a use accepted offline.
# KEYS as above (all three); ARGV[1] claimant, ARGV[2] request id (non-empty), ARGV[3] nonce
# time to live in ms (0: the token has expired, no nonce), ARGV[4] use record time to live in
# ms, ARGV[5] when it was accepted (Unix ms), ARGV[6] the gateway's id.
# A use is found in the use record, or else in a live nonce (claimed without a use record: its
# first two lines, time unknown). Reply {outcome, holder now or false, first use or false}.
RECONCILE_LUA = """\
local holder = redis.call('GET', KEYS[1])
local head = ARGV[1] .. '\\n' .. ARGV[2]
local prev = redis.call('GET', KEYS[3])
if not prev then
  prev = redis.call('GET', KEYS[2])
  if prev then
    local claimant, rid = string.match(prev, '^([^\\n]*)\\n?([^\\n]*)')
    prev = claimant .. '\\n' .. rid .. '\\n\\n'
  end
end
if prev then
  if string.sub(prev, 1, #head + 1) == head .. '\\n' then
    return {'retry', holder, false}
  end
  return {'replayed', false, prev}
end
redis.call('SET', KEYS[3], head .. '\\n' .. ARGV[5] .. '\\n' .. ARGV[6], 'PX', ARGV[4])
if tonumber(ARGV[3]) > 0 then
  local value = head
  if holder then
    value = head .. '\\n' .. holder
  end
  redis.call('SET', KEYS[2], value, 'PX', ARGV[3])
end
return {'new', holder, false}
"""

RECONCILE_SHA = hashlib.sha1(RECONCILE_LUA.encode()).hexdigest()

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


def parse_reconcile_reply(reply: object) -> tuple[str, bytes | None, bytes | None]:
    """Return (outcome, holder JSON or None, first use or None); StoreUnavailable otherwise."""
    if isinstance(reply, list) and len(reply) == 3:
        tag, holder, first = reply
        outcome = _OUTCOMES.get(tag) if isinstance(tag, bytes) else None
        if (
            outcome is not None
            and (holder is None or isinstance(holder, bytes))
            and (first is None) == (outcome != REPLAYED)
            and (first is None or isinstance(first, bytes))
        ):
            return outcome, holder, first
    raise StoreUnavailable(f"unexpected reply to the reconcile script: {reply!r:.200}")
