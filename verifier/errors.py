"""Error hierarchy with stable, machine-readable reason codes.

    VerifierError
    ├── TokenError            a token is rejected; ``reason`` is one of TOKEN_REASONS
    ├── RequestRefused        a request is refused before a verdict; ``code`` is one of
    │                         REFUSAL_STATUS, which also gives the HTTP status it is answered with
    ├── TrustListError        a trust list (or its source) cannot be loaded
    ├── KeyFormatError        a PASERK string is malformed or not a valid key
    ├── ConfigError           a setting is missing or bad; the message names the key
    ├── RecordError           a registry / institution / scanner record is invalid
    └── StoreUnavailable      the store could not answer in time (not a token error)
        └── StoreAuthFailed   the store refused our credentials (a setting to fix)

Callers outside the process only ever see the reason code; ``detail`` is for logs.
"""

from __future__ import annotations

# Reasons decided by the token core (pure verification).
MALFORMED = "malformed"
UNSUPPORTED_TOKEN = "unsupported_token"
UNKNOWN_KEY = "unknown_key"
KEY_REVOKED = "key_revoked"
KEY_NOT_VALID = "key_not_valid"
BAD_SIGNATURE = "bad_signature"
INVALID_CLAIMS = "invalid_claims"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
ISSUED_IN_FUTURE = "issued_in_future"
LIFETIME_TOO_LONG = "lifetime_too_long"
CARD_NOT_ALLOWED = "card_not_allowed"
TRUST_LIST_EXPIRED = "trust_list_expired"

TOKEN_REASONS: frozenset[str] = frozenset(
    {
        MALFORMED,
        UNSUPPORTED_TOKEN,
        UNKNOWN_KEY,
        KEY_REVOKED,
        KEY_NOT_VALID,
        BAD_SIGNATURE,
        INVALID_CLAIMS,
        EXPIRED,
        NOT_YET_VALID,
        ISSUED_IN_FUTURE,
        LIFETIME_TOO_LONG,
        CARD_NOT_ALLOWED,
        TRUST_LIST_EXPIRED,
    }
)

# Reasons decided by the service after the token core.
OK = "ok"
REPLAYED = "replayed"
INSTITUTION_NOT_ENABLED = "institution_not_enabled"
NOT_ENROLLED = "not_enrolled"
COVERAGE_SUSPENDED = "coverage_suspended"
COVERAGE_TERMINATED = "coverage_terminated"
PHYSICAL_CARD_INACTIVE = "physical_card_inactive"
# The token was genuine and its nonce is spent, but the holder record the store holds is in a
# shape the records codec refuses: never a 500, never a silent "ok".
RECORD_UNREADABLE = "record_unreadable"
# The store may have forgotten claims (a Redis node restarted, failed over or was flushed)
# after this token was issued: whether it was used cannot be told. Show a fresh code.
REISSUE_REQUIRED = "reissue_required"

SERVICE_REASONS: frozenset[str] = frozenset(
    {
        OK,
        REPLAYED,
        INSTITUTION_NOT_ENABLED,
        NOT_ENROLLED,
        COVERAGE_SUSPENDED,
        COVERAGE_TERMINATED,
        PHYSICAL_CARD_INACTIVE,
        RECORD_UNREADABLE,
        REISSUE_REQUIRED,
    }
)

ALL_REASONS: frozenset[str] = TOKEN_REASONS | SERVICE_REASONS

# Reasons only a gateway sidecar gives, deciding offline while the centre cannot be reached.
# The holder's offline budget (count or amount per window) is spent: the patient pays first
# and claims later. Not in ALL_REASONS: the central service never answers it.
OFFLINE_LIMIT = "offline_limit"

SIDECAR_REASONS: frozenset[str] = frozenset({OFFLINE_LIMIT})

# Why a gateway's offline acceptance sent to ``POST /v1/reconcile`` is rejected, besides the
# token's own reasons (judged at the time of acceptance) and institution_not_enabled. Not in
# ALL_REASONS: no verify answer carries them.
MALFORMED_ITEM = "malformed_item"  # not {"token", "request_id", "scanner", "accepted_at", ...}
ACCEPTED_IN_FUTURE = "accepted_in_future"  # accepted_at is ahead of the centre's clock
# accepted_at is older than VERIFIER_RECONCILE_WINDOW: a double use could no longer be seen
OUTSIDE_RECONCILE_WINDOW = "outside_reconcile_window"
FOREIGN_SCANNER = "foreign_scanner"  # the scanner is unknown or of another institution

RECONCILE_REASONS: frozenset[str] = frozenset(
    {MALFORMED_ITEM, ACCEPTED_IN_FUTURE, OUTSIDE_RECONCILE_WINDOW, FOREIGN_SCANNER}
)


# Refusals: the request gets no verdict. Each code is answered with its HTTP status.
MALFORMED_REQUEST = "malformed_request"
UNAUTHORIZED = "unauthorized"
SCANNER_REVOKED = "scanner_revoked"
GATEWAY_REVOKED = "gateway_revoked"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
BODY_TOO_LARGE = "body_too_large"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
INTERNAL_ERROR = "internal_error"
STORE_UNAVAILABLE = "store_unavailable"
REQUEST_TIMEOUT = "request_timeout"  # the head or body did not arrive in time
# TRUST_LIST_EXPIRED (above) is a refusal too: no token can be verified without a fresh list.

REFUSAL_STATUS: dict[str, int] = {
    MALFORMED_REQUEST: 400,
    UNAUTHORIZED: 401,
    SCANNER_REVOKED: 403,
    GATEWAY_REVOKED: 403,
    NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    BODY_TOO_LARGE: 413,
    REQUEST_TIMEOUT: 408,
    UNSUPPORTED_MEDIA_TYPE: 415,
    INTERNAL_ERROR: 500,
    STORE_UNAVAILABLE: 503,
    TRUST_LIST_EXPIRED: 503,
}


class VerifierError(Exception):
    """Base of every error this package raises on purpose."""


class TokenError(VerifierError):
    """A token was rejected. ``reason`` is stable; ``detail`` is for logs only."""

    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class RequestRefused(VerifierError):
    """The request is refused before any verdict. ``code`` is a key of REFUSAL_STATUS;
    ``message`` is for people (it never repeats a token, a secret or an ID number)."""

    def __init__(self, code: str, message: str) -> None:
        if code not in REFUSAL_STATUS:
            raise ValueError(f"unknown refusal code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return REFUSAL_STATUS[self.code]


class TrustListError(VerifierError):
    """A trust list or its source file was refused."""


class KeyFormatError(VerifierError):
    """A PASERK key string is malformed, of the wrong type, or not a valid key."""


class ConfigError(VerifierError):
    """A setting is missing or invalid; the message names the setting."""


class RecordError(VerifierError):
    """A registry, institution or scanner record is invalid."""


class StoreUnavailable(VerifierError):
    """The store did not answer (timeout, connection error). Requests must fail closed (503)."""


class StoreAuthFailed(StoreUnavailable):
    """The store refused the credentials in its URL (or wants some and got none). To the
    service a request it cannot answer (503, fail closed); to an operator a setting to fix:
    the message says which, and how the URL carries a password, never the password."""
