"""Prometheus metrics, kept by hand: a few counters and histograms, text exposition 0.0.4."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from verifier.store.identity import Forgetting

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
# now - iat as seen by the service, per institution: shows scanner (or phone) clock drift.
DRIFT_BUCKETS = (-30.0, -5.0, -1.0, 0.0, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)


class Histogram:
    __slots__ = ("bounds", "counts", "total", "n")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def state(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "total": self.total, "n": self.n}

    def add(self, state: dict[str, Any]) -> None:
        if len(state["counts"]) != len(self.counts):
            return  # another version's buckets: not comparable
        self.counts = [a + b for a, b in zip(self.counts, state["counts"], strict=True)]
        self.total += state["total"]
        self.n += state["n"]

    def render(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out, cumulative = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            cumulative += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {cumulative}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{braces} {self.total}")
        out.append(f"{name}_count{braces} {self.n}")
        return out


class Metrics:
    def __init__(self) -> None:
        self.verdicts: dict[str, int] = defaultdict(int)
        self.http_errors: dict[int, int] = defaultdict(int)
        self.store_errors = 0
        self.records_unreadable = 0
        # Gateways' offline acceptances by outcome: confirmed, conflict, rejected.
        self.reconcile: dict[str, int] = dict.fromkeys(("confirmed", "conflict", "rejected"), 0)
        self.latency = Histogram(LATENCY_BUCKETS)
        # Connections (verifier/service/connections.py): open now; closed before their
        # request was answered, by cause; closed by a deadline, by phase.
        self.connections_open = 0
        self.connections_refused: dict[str, int] = dict.fromkeys(
            ("limit", "evicted", "malformed"), 0
        )
        self.connection_timeouts: dict[str, int] = dict.fromkeys(("header", "body", "keepalive"), 0)
        self.drift: dict[str, Histogram] = {}
        # What the store found it may have forgotten (the pipeline points this at its store).
        self.forgettings: Callable[[], list[Forgetting]] = list
        # Redirections a cluster store followed, by kind (empty for other stores).
        self.store_redirects: Callable[[], dict[str, int]] = dict

    def observe_drift(self, institution: str, seconds: float) -> None:
        h = self.drift.get(institution)
        if h is None:
            if len(self.drift) >= 10_000:
                return  # bounded label cardinality
            h = self.drift[institution] = Histogram(DRIFT_BUCKETS)
        h.observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        """Every counter as plain JSON values (for the other workers of the service)."""
        return {
            "verdicts": dict(self.verdicts),
            "http_errors": {str(k): v for k, v in self.http_errors.items()},
            "store_errors": self.store_errors,
            "records_unreadable": self.records_unreadable,
            "reconcile": dict(self.reconcile),
            "latency": self.latency.state(),
            "connections_open": self.connections_open,
            "connections_refused": dict(self.connections_refused),
            "connection_timeouts": dict(self.connection_timeouts),
            "drift": {inst: h.state() for inst, h in self.drift.items()},
            "forgettings": [[f.at, f.where, f.why] for f in self.forgettings()],
            "store_redirects": self.store_redirects(),
        }

    def combined(self, others: Iterable[tuple[dict[str, Any], bool]]) -> Metrics:
        """This worker's metrics plus other workers' snapshots, each with whether that worker
        is live: counters and histograms add, open connections only of live workers; the
        trust-list gauges stay this worker's (``render``'s arguments)."""
        total = Metrics()
        forgot: list[Forgetting] = []
        redirects: dict[str, int] = {}
        for snap, live in [(self.snapshot(), True), *others]:
            for reason, n in snap["verdicts"].items():
                total.verdicts[reason] += n
            for status, n in snap["http_errors"].items():
                total.http_errors[int(status)] += n
            total.store_errors += snap["store_errors"]
            total.records_unreadable += snap["records_unreadable"]
            for name, into in (
                ("reconcile", total.reconcile),
                ("connections_refused", total.connections_refused),
                ("connection_timeouts", total.connection_timeouts),
                ("store_redirects", redirects),
            ):
                for key, n in snap[name].items():
                    into[key] = into.get(key, 0) + n
            total.latency.add(snap["latency"])
            if live:
                total.connections_open += snap["connections_open"]
            for inst, state in snap["drift"].items():
                h = total.drift.get(inst)
                if h is None:
                    h = total.drift[inst] = Histogram(DRIFT_BUCKETS)
                h.add(state)
            forgot += [Forgetting(at, where, why) for at, where, why in snap["forgettings"]]
        total.forgettings = lambda: forgot
        total.store_redirects = lambda: redirects
        return total

    def render(self, trust_version: int, trust_age: float, trust_ttl: float) -> str:
        lines = [
            "# HELP verifier_verdicts_total Decided verdicts by reason.",
            "# TYPE verifier_verdicts_total counter",
        ]
        lines += [
            f'verifier_verdicts_total{{reason="{r}"}} {n}' for r, n in sorted(self.verdicts.items())
        ]
        lines += [
            "# HELP verifier_http_errors_total Requests refused before a verdict, by status.",
            "# TYPE verifier_http_errors_total counter",
        ]
        lines += [
            f'verifier_http_errors_total{{status="{s}"}} {n}'
            for s, n in sorted(self.http_errors.items())
        ]
        lines += [
            "# HELP verifier_store_errors_total Store calls that failed or timed out (answered 503).",
            "# TYPE verifier_store_errors_total counter",
            f"verifier_store_errors_total {self.store_errors}",
            "# HELP verifier_records_unreadable_total Holder records the codec refused (answered record_unreadable).",
            "# TYPE verifier_records_unreadable_total counter",
            f"verifier_records_unreadable_total {self.records_unreadable}",
            "# HELP verifier_reconcile_total Offline acceptances reconciled by gateways, by outcome.",
            "# TYPE verifier_reconcile_total counter",
            *(
                f'verifier_reconcile_total{{outcome="{o}"}} {n}'
                for o, n in sorted(self.reconcile.items())
            ),
            "# HELP verifier_connections_open Client connections open in the service's workers.",
            "# TYPE verifier_connections_open gauge",
            f"verifier_connections_open {self.connections_open}",
            "# HELP verifier_connections_refused_total Connections closed by the service: over "
            "the cap (limit), to make room (evicted), unparseable request (malformed).",
            "# TYPE verifier_connections_refused_total counter",
            *(
                f'verifier_connections_refused_total{{cause="{c}"}} {n}'
                for c, n in sorted(self.connections_refused.items())
            ),
            "# HELP verifier_connection_timeouts_total Connections closed by a deadline: head, "
            "body, or idle keep-alive.",
            "# TYPE verifier_connection_timeouts_total counter",
            *(
                f'verifier_connection_timeouts_total{{phase="{p}"}} {n}'
                for p, n in sorted(self.connection_timeouts.items())
            ),
            "# HELP verifier_request_seconds Service-side processing time of verify requests.",
            "# TYPE verifier_request_seconds histogram",
            *self.latency.render("verifier_request_seconds"),
            "# HELP verifier_trust_list_version Version of the loaded trust list.",
            "# TYPE verifier_trust_list_version gauge",
            f"verifier_trust_list_version {trust_version}",
            "# HELP verifier_trust_list_age_seconds Seconds since the loaded trust list was issued.",
            "# TYPE verifier_trust_list_age_seconds gauge",
            f"verifier_trust_list_age_seconds {trust_age:.3f}",
            "# HELP verifier_trust_list_expires_in_seconds Seconds until the loaded list expires.",
            "# TYPE verifier_trust_list_expires_in_seconds gauge",
            f"verifier_trust_list_expires_in_seconds {trust_ttl:.3f}",
            "# HELP verifier_token_age_seconds now - iat of verified tokens, per institution.",
            "# TYPE verifier_token_age_seconds histogram",
        ]
        for inst, h in sorted(self.drift.items()):
            lines += h.render("verifier_token_age_seconds", f'institution="{_escape(inst)}"')
        redirects = self.store_redirects()
        if redirects:
            lines += [
                "# HELP verifier_store_redirects_total Redirections a Redis Cluster store "
                "followed, by kind: moved (a slot moved), ask (a slot in migration), tryagain "
                "(a migration split a command's keys; the command waited).",
                "# TYPE verifier_store_redirects_total counter",
                *(
                    f'verifier_store_redirects_total{{kind="{k}"}} {n}'
                    for k, n in sorted(redirects.items())
                ),
            ]
        latest: dict[tuple[str, str], float] = {}
        for f in self.forgettings():
            latest[(f.where, f.why)] = max(f.at, latest.get((f.where, f.why), 0.0))
        lines += [
            "# HELP verifier_store_forgot_at_seconds When (Unix time) the store last found a "
            "node that may have forgotten claims, by node and cause: tokens issued before "
            "then are refused (reissue_required) until they expire.",
            "# TYPE verifier_store_forgot_at_seconds gauge",
            *(
                f'verifier_store_forgot_at_seconds{{node="{_escape(w)}",why="{_escape(y)}"}} {t:.3f}'
                for (w, y), t in sorted(latest.items())
            ),
        ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
