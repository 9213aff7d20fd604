"""`verifier serve`: run the HTTP service (settings from flags, VERIFIER_* and a config file)."""

from __future__ import annotations

import argparse
import os

from verifier.config import load_settings
from verifier.service.server import serve


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the verification service",
        description="Settings come from flags, then VERIFIER_* environment variables, then the "
        "config file (TOML; keys are the variable names without VERIFIER_, lower case).",
    )
    p.add_argument("--listen", help="HOST:PORT (VERIFIER_LISTEN, default 127.0.0.1:8080)")
    p.add_argument("--workers", type=int, help="worker processes (VERIFIER_WORKERS, default 1)")
    p.add_argument("--store", help="redis://…, rediss://… or memory:// (VERIFIER_STORE)")
    p.add_argument("--trust-list", help="signed trust list file (VERIFIER_TRUST_LIST)")
    p.add_argument("--root-key", help="root public key file (VERIFIER_ROOT_KEY)")
    p.add_argument("--policy", help="benefit policy file (VERIFIER_POLICY)")
    p.add_argument("--config", help="TOML config file (VERIFIER_CONFIG)")
    p.add_argument(
        "--allow-eviction",
        action="store_const",
        const=True,
        help="run on a Redis whose maxmemory-policy may evict nonces (VERIFIER_ALLOW_EVICTION); unsafe",
    )
    p.set_defaults(func=_run)


def _run(a: argparse.Namespace) -> int:
    overrides = {
        "listen": a.listen,
        "workers": a.workers,
        "store": a.store,
        "trust_list": a.trust_list,
        "root_key": a.root_key,
        "policy": a.policy,
        "allow_eviction": a.allow_eviction,
    }
    return serve(load_settings(os.environ, overrides, a.config))
