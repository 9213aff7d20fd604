"""The gateway sidecar: one local endpoint for a hospital's scanners, safe when the link fails.

The sidecar sits on the hospital's front machine and serves the same scanner API as the
central service. The centre stays authoritative whenever it can be reached; the sidecar copies
no personal data to the site.

Online
    Every verify request is forwarded to the centre (:mod:`.upstream`: kept-alive connections,
    the scanner's own ``Authorization``, a request id so a retry is one use) and the centre's
    answer is returned as it is, marked ``"mode": "online"``.

The offline rule
    A request goes offline when its forward fails (connection error, timeout after
    ``VERIFIER_UPSTREAM_TIMEOUT_MS``, 5xx), or at once while the circuit breaker is open
    (:mod:`.breaker`: open after a few failures in a row, closed by a background probe).
    Offline, a scan is accepted only if all of these hold:

    1. the centre has been unreachable for less than ``VERIFIER_OFFLINE_MAX_AGE`` (default
       12h); after that every offline decision is 503;
    2. the scanner is known and not revoked in the directory last synced from the centre;
    3. the token passes the token core against the synced, signed trust list;
    4. its nonce is not yet in this sidecar's journal (else ``replayed``; the same scanner and
       request id again gets the first answer);
    5. the holder's offline budget is not spent (:mod:`.budget`: at most
       ``VERIFIER_OFFLINE_LIMIT`` scans and ``VERIFIER_OFFLINE_MAX_AMOUNT`` yuan per
       ``VERIFIER_OFFLINE_WINDOW``), else ``valid: false, reason: offline_limit``: the patient
       pays first and claims later;
    6. the acceptance is committed durably to the journal (:mod:`.journal`: SQLite, WAL,
       fsynced, commits grouped per loop turn) *before* the answer is sent.

    The answer is ``valid: true, mode: offline, covered: null, settle_later: true``: identity
    verified, coverage unknown. Steps 4–6 are one journal transaction, so two concurrent scans
    cannot both pass on the same nonce or the same remaining budget.

Reconciliation
    When the centre is back, pending journal rows are sent to it in batches, oldest first; each
    row keeps the centre's outcome: ``confirmed``, ``conflict`` (the nonce was also used
    elsewhere) or ``rejected``. The journal holds tokens for that purpose only; listings name the
    holder id, request id, scanner, time and state, never the token or an ID number.

Modules: :mod:`.journal` (async, group commit) over :mod:`.journal_file` (SQLite) and
:mod:`.journal_types`; :mod:`.budget`; :mod:`.breaker`; :mod:`.upstream`; :mod:`.durations`.
All decisions (budget, breaker) are pure and take ``now``; only the journal and the upstream
client do I/O. ``python -m verifier.sidecar.journal_bench`` measures durable acceptances/s.
"""
