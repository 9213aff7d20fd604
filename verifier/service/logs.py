"""The service's log: one line per event an operator acts on, as text or as JSON.

``VERIFIER_LOG_FORMAT=text`` (default) writes lines people read::

    2026-12-04 05:31:07,123 INFO verifier[4242]: serving on http://127.0.0.1:8080 (trust list v3)

``VERIFIER_LOG_FORMAT=json`` writes one object per line for a log shipper, with the event's
fields beside the same message: ``{"time", "level", "logger", "pid", "message", "event", …}``.

Events (logger, ``event`` field): ``verifier`` start, stop, worker_exit, worker_restart,
workers_failing; ``verifier.store`` store_down, store_up; ``verifier.trust`` trust_reload,
trust_reload_refused; ``verifier.access`` verdict (only with ``VERIFIER_ACCESS_LOG=true``).
Callers pass ids, reasons and numbers only: never a token, an ID number or a secret.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

from verifier.records import Scanner

ACCESS_LOGGER = "verifier.access"


def event(logger: logging.Logger, level: int, name: str, message: str, **fields: Any) -> None:
    """Log ``message`` with the event ``name`` and ``fields`` (JSON keys; text shows only
    the message, so it must say what matters by itself)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"event_fields": {"event": name, **fields}})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (RFC 3339, UTC, ms), level, logger, pid, message,
    the event's fields, and ``exception`` (the traceback text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        t = time.gmtime(record.created)
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "event_fields", None) or {})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


def configure_logging(level: str, fmt: str = "text", access_log: bool = False) -> None:
    """Send every log line to stderr at ``level``, as ``fmt`` (text or json); with
    ``access_log`` the access log's lines too, whatever the level. Like
    :func:`logging.basicConfig`, it adds no handler when the root logger has one already."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if access_log:
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)


_access = logging.getLogger(ACCESS_LOGGER)


def access_line(scanner: Scanner, verdict: Mapping[str, Any], seconds: float) -> None:
    """One ``verdict`` event of the access log: institution, scanner, reason (or the refusal
    code of a batch item), valid, covered, latency and the scanner's request id. Never the
    token, the holder or an ID number: ``verdict`` is read for those five fields only."""
    reason = verdict.get("reason") or verdict.get("error")
    rid = verdict.get("request_id")
    ms = round(seconds * 1000, 3)
    event(
        _access,
        logging.INFO,
        "verdict",
        f"verdict {reason} institution={scanner.institution} scanner={scanner.id} "
        f"latency_ms={ms:.3f} request_id={rid or '-'}",
        institution=scanner.institution,
        scanner=scanner.id,
        reason=reason,
        valid=verdict.get("valid"),
        covered=verdict.get("covered"),
        latency_ms=ms,
        request_id=rid,
    )
