"""The sidecar's own API document: the centre's, plus what only a sidecar says.

Built from :data:`verifier.service.endpoint.OPENAPI` at import, so the scanner API (routes,
limits, refusal codes) is documented once and can never differ between the two; the sidecar
adds the ``mode``, ``settle_later`` and nullable ``covered`` fields of its verdicts, the
``offline_limit`` reason, and ``GET /v1/gateway/status``.
"""

from __future__ import annotations

from typing import Any

import orjson

from verifier.errors import OFFLINE_LIMIT
from verifier.service.endpoint import OPENAPI

STATUS_PATH = "/v1/gateway/status"
CENTRE_ONLY = ("/v1/gateway/scanners", "/v1/trust-list", "/v1/reconcile")

_OFFLINE_LIMIT = (
    "Offline only (a gateway sidecar deciding while the central service cannot be reached): the "
    "token is genuine, fresh and unused at this sidecar, but the holder's offline budget "
    "(acceptances or yuan per window) is spent. `valid` and `covered` are false; `card` is "
    "present. The token is NOT used up: the patient pays first and claims later, or the scan is "
    "repeated once the centre answers."
)

_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The sidecar's link to the centre and its journal of offline acceptances.",
    "required": ["mode", "offline_since", "pending", "confirmed", "conflict", "rejected"],
    "properties": {
        "mode": {"type": "string", "enum": ["online", "offline"]},
        "offline_since": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "Since when the centre has not answered; null while it answers.",
        },
        "pending": {"type": "integer", "description": "Offline acceptances not reconciled yet."},
        "confirmed": {"type": "integer", "description": "Reconciled: the centre agreed."},
        "conflict": {
            "type": "integer",
            "description": "Reconciled: the token was also used elsewhere (listed at the centre).",
        },
        "rejected": {"type": "integer", "description": "Reconciled: the centre refused it."},
        "trust_list_version": {"type": "integer"},
        "scanners": {"type": "integer", "description": "Scanners in the synced directory."},
        "synced_at": {"type": ["string", "null"], "format": "date-time"},
        "gateway_credential": {
            "type": "string",
            "enum": ["accepted", "refused"],
            "description": "`refused` once the centre answered 401/403 to the gateway "
            "credential (revoked, or unknown there): scans are still forwarded, none is "
            "accepted offline and the journal is not reconciled, until a sync is accepted.",
        },
    },
}

OFFLINE_TOO_LONG = "offline for longer than the offline max age"


def sidecar_document() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(OPENAPI)
    info = doc["info"]
    info["title"] += " (gateway sidecar)"
    info["description"] += (
        "\n\nThis is a gateway sidecar: the same scanner API, served on the hospital's network. "
        "While the central service answers, every verdict is the centre's, with "
        '`"mode": "online"`. When it cannot be reached in time, the sidecar decides offline '
        '(`"mode": "offline"`): identity is verified and the token is used up at this site, '
        'coverage is unknown (`"covered": null`, `"settle_later": true`) and each acceptance '
        "is reconciled with the centre later; the holder's offline budget bounds them "
        "(`offline_limit`)."
    )
    schemas = doc["components"]["schemas"]
    reason = schemas["ReasonCode"]
    reason["enum"].append(OFFLINE_LIMIT)
    reason["description"] += f"\n\nDecided by a gateway sidecar offline:\n\n- `{OFFLINE_LIMIT}`: "
    reason["description"] += _OFFLINE_LIMIT
    reason["x-enum-descriptions"][OFFLINE_LIMIT] = _OFFLINE_LIMIT
    verdict = schemas["Verdict"]["properties"]
    verdict["covered"] = {
        "type": ["boolean", "null"],
        "description": "True exactly when `reason` is `ok` and coverage is known; null for an "
        "offline acceptance (coverage unknown until reconciliation).",
    }
    verdict["mode"] = {
        "type": "string",
        "enum": ["online", "offline"],
        "description": "`online`: the central service's verdict; `offline`: the sidecar's own.",
    }
    verdict["settle_later"] = {
        "type": "boolean",
        "description": "Present (true) on an offline acceptance: settle after reconciliation.",
    }
    verdict["holder"] = {
        "oneOf": [
            {"$ref": "#/components/schemas/Holder"},
            {"$ref": "#/components/schemas/HolderId"},
        ],
        "description": "Online as at the centre; offline only the holder id.",
    }
    schemas["HolderId"] = {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string", "description": "Holder id (the token's `sub`)."}},
    }
    schemas["GatewayStatus"] = _STATUS_SCHEMA
    problems = schemas["Readiness"]["properties"]["problems"]["items"]["enum"]
    problems.append(OFFLINE_TOO_LONG)
    for path in CENTRE_ONLY:  # the centre's routes for gateways: a sidecar answers them 404
        doc["paths"].pop(path, None)
    doc["paths"][STATUS_PATH] = {
        "get": {
            "tags": ["operations"],
            "operationId": "gatewayStatus",
            "summary": "Online or offline, and the journal's counts per state",
            "responses": {
                "200": {
                    "description": "The sidecar's state.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/GatewayStatus"}
                        }
                    },
                },
                "400": {"$ref": "#/components/responses/MalformedHttp"},
                "405": {"$ref": "#/components/responses/MethodNotAllowed"},
                "408": {"$ref": "#/components/responses/RequestTimeout"},
                "415": {"$ref": "#/components/responses/ContentEncodingRefused"},
                "500": {"$ref": "#/components/responses/InternalError"},
            },
        }
    }
    return doc


SIDECAR_OPENAPI = orjson.dumps(sidecar_document())
