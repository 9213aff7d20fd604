"""Settings of every command, read once by one loader into frozen objects.

Precedence: flags (``overrides``) > environment (``VERIFIER_*``) > the TOML file named by
``--config`` or ``VERIFIER_CONFIG`` > the field's default. Only a command's entry point reads
``os.environ``; the loader takes the mapping as an argument. Every error is a ConfigError that
names where the bad value came from: the variable (``VERIFIER_EXP_LEEWAY: …``) or the file and
its key (``config file /etc/verifier.toml, key exp_leeway: …``).

How a settings class is read (fields, limits, the ``problems()`` rules across fields) is
:mod:`verifier.config_loader`; this module holds the classes. One config file serves every
command, so a key is refused only when none of :data:`FILE_SETTINGS` has it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit

from verifier import config_loader
from verifier.config_loader import Parser, setting
from verifier.credentials import is_gateway_credential
from verifier.durations import format_duration, parse_duration
from verifier.errors import ConfigError
from verifier.policy import MAX_CLOCK_SKEW, MAX_EXP_LEEWAY, MAX_FUTURE_LEEWAY, MAX_LIFETIME_CAP
from verifier.sidecar.budget import parse_amount

DEFAULT_STORE = "redis://127.0.0.1:6379/0"
# How long the centre remembers a token's use, so that a gateway reconciling an offline
# acceptance later still finds a double use (VERIFIER_RECONCILE_WINDOW).
DEFAULT_RECONCILE_WINDOW_MS = 72 * 3_600_000
LOG_FORMATS = ("text", "json")

_LISTEN = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):([0-9]{1,5})")

S = TypeVar("S")


def _claim_duration(low: int, high: int) -> Parser:
    """A parser of one claim-policy duration: units required (``30s``, ``5m``), whole seconds
    only (the claim policy counts in seconds), from ``low`` to ``high`` seconds (the caps of
    verifier/policy.py); the value is milliseconds, as every duration setting's."""

    def parse(label: str, raw: object) -> int:
        ms = parse_duration(label, raw)
        if ms % 1000:
            raise ConfigError(
                f"{label}: whole seconds only (the claim policy counts in seconds), got {raw!r}"
            )
        if not low <= ms // 1000 <= high:
            raise ConfigError(f"{label}: must be between {low}s and {high}s, got {raw!r}")
        return ms

    return parse


def claim_seconds(ms: int) -> int:
    """Whole seconds of a claim-policy setting (milliseconds), as ClaimPolicy takes them."""
    seconds, rest = divmod(ms, 1000)
    if rest:
        raise ValueError(f"a claim-policy duration must be whole seconds, got {ms} ms")
    return seconds


@dataclass(frozen=True)
class Listening:
    """What every serving process shares (`verifier serve` and `verifier sidecar`): where it
    listens, its connections, its logs, and the claim policy of the token core."""

    listen: str = "127.0.0.1:8080"  # HOST:PORT
    log_level: str = "info"
    log_format: str = "text"  # text | json (one object per line, for a log shipper)
    access_log: bool = False  # one line per verdict: institution, scanner, reason, latency
    fast_path: bool = True  # false = every request through aiohttp
    # Connections, per worker (verifier/service/connections.py)
    header_timeout_seconds: float = setting(10.0, low=0.1, high=3600)  # head, then 408
    body_timeout_seconds: float = setting(30.0, low=0.1, high=3600)  # body after its head
    keepalive_seconds: float = setting(75.0, low=0.1, high=86_400)  # idle between requests
    max_connections: int = setting(4096, low=1, high=1_000_000)  # then the oldest idle go
    # The claim policy, in milliseconds of whole seconds (30s, 5m); claim_seconds() for ClaimPolicy
    exp_leeway: int = setting(30_000, parse=_claim_duration(0, MAX_EXP_LEEWAY))  # after exp
    future_leeway: int = setting(5_000, parse=_claim_duration(0, MAX_FUTURE_LEEWAY))  # iat/nbf
    max_lifetime: int = setting(300_000, parse=_claim_duration(1, MAX_LIFETIME_CAP))  # exp - iat

    @property
    def host_port(self) -> tuple[str, int]:
        """(host, port) of ``listen``; an empty host means every interface."""
        parsed = _split_listen(self.listen)
        if parsed is None:
            raise ConfigError(f"VERIFIER_LISTEN: expected HOST:PORT, got {self.listen!r}")
        return parsed

    def listening_problems(self) -> Iterator[tuple[str, str]]:
        """The rules of the shared fields."""
        if _split_listen(self.listen) is None:
            yield "listen", f"expected HOST:PORT, got {self.listen!r}"
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            yield "log_level", "one of debug, info, warning, error"
        if self.log_format not in LOG_FORMATS:
            yield "log_format", "one of text, json"


@dataclass(frozen=True)
class Settings(Listening):
    """Everything `verifier serve` needs."""

    store: str = DEFAULT_STORE  # redis[s]://, redis[s]+cluster:// or memory://
    trust_list: str = ""  # path of the signed trust list (required)
    root_key: str = ""  # path of the root public key (required)
    workers: int = setting(1, low=1, high=64)  # processes sharing the port (SO_REUSEPORT)
    policy: str = ""  # benefit policy file; empty = built-in default
    store_deadline_ms: int = setting(50, low=1, high=10_000)  # per store call, then 503
    allow_eviction: bool = False  # run on an evicting Redis anyway
    auth_cache_seconds: float = setting(2.0, low=0, high=86_400)  # scanner/institution cache
    max_body_bytes: int = setting(8192, low=256, high=65_536)  # one verify request
    max_batch_bytes: int = setting(1_048_576, low=256, high=67_108_864)  # one batch request
    trust_poll_seconds: float = setting(2.0, low=0.1, high=86_400)  # trust file change check
    # between verifiers; nonces are kept this much longer
    clock_skew: int = setting(60_000, parse=_claim_duration(0, MAX_CLOCK_SKEW))
    # how long a use is kept for reconciling gateways (72h); bytes per scan grow with it
    reconcile_window: int = setting(DEFAULT_RECONCILE_WINDOW_MS, parse=parse_duration)
    redis_ca_file: str = ""  # rediss://: CA bundle to verify the server (default: system CAs)
    redis_cert_file: str = ""  # rediss://: client certificate (PEM), with redis_key_file
    redis_key_file: str = ""  # rediss://: the client certificate's private key (PEM)
    # cluster only: a claim is answered once WAIT confirms it on this many replicas, else 503;
    # a failover then keeps every acknowledged claim (docs/DEPLOYMENT.md)
    min_replicas: int = setting(0, low=0, high=16)

    def problems(self) -> Iterator[tuple[str, str]]:
        """(field, message) for each rule the settings break; nothing when they are usable."""
        yield from self.listening_problems()
        if not self.store.startswith(_REDIS_SCHEMES + ("memory://",)):
            yield "store", "expected redis://…, rediss://…, redis+cluster://…, or memory://"
        yield from _redis_url_problems(self.store)
        yield from _min_replicas_problems(self.store, self.min_replicas)
        if self.workers > 1 and self.store.startswith("memory://"):
            yield "workers", "the memory:// store lives in one process; use --workers 1 or Redis"
        if not self.trust_list:
            yield "trust_list", "path of the signed trust list is required"
        if not self.root_key:
            yield "root_key", "path of the root public key is required"
        if self.max_batch_bytes < self.max_body_bytes:
            yield "max_batch_bytes", f"must be at least max_body_bytes ({self.max_body_bytes})"
        if self.reconcile_window < self.max_lifetime + self.exp_leeway:
            # A shorter window would forget a use while its token can still be presented.
            least = format_duration(self.max_lifetime + self.exp_leeway)
            yield "reconcile_window", f"must be at least max_lifetime + exp_leeway ({least})"
        yield from _tls_problems(
            self.store, self.redis_ca_file, self.redis_cert_file, self.redis_key_file
        )


@dataclass(frozen=True)
class AdminSettings:
    """Where the admin commands (`registry`, `institutions`, `scanners`) write: the store."""

    store: str = DEFAULT_STORE  # redis://, rediss://, redis+cluster:// or rediss+cluster://
    allow_eviction: bool = False  # write to an evicting Redis anyway
    redis_ca_file: str = ""  # rediss:// only, as for Settings
    redis_cert_file: str = ""
    redis_key_file: str = ""

    def problems(self) -> Iterator[tuple[str, str]]:
        """(field, message) for each rule the settings break; nothing when they are usable."""
        if self.store.startswith("memory:"):
            yield (
                "store",
                "memory:// lives inside one serving process, so admin commands cannot reach "
                "it; point the store at Redis (redis://host:port/db), or use `verifier demo` "
                "for a self-contained demo",
            )
        elif not self.store.startswith(_REDIS_SCHEMES):
            yield "store", "expected redis://…, rediss://…, redis+cluster://… or rediss+cluster://…"
        yield from _redis_url_problems(self.store)
        yield from _tls_problems(
            self.store, self.redis_ca_file, self.redis_cert_file, self.redis_key_file
        )


_REDIS_SCHEMES = ("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")
_TLS_SCHEMES = ("rediss://", "rediss+cluster://")


def _min_replicas_problems(store: str, min_replicas: int) -> Iterator[tuple[str, str]]:
    """Replica confirmation (WAIT per claim) is built for the cluster store only."""
    if min_replicas and not store.startswith(("redis+cluster://", "rediss+cluster://")):
        yield "min_replicas", "replica confirmation needs a redis+cluster:// store; set it to 0"


def _redis_url_problems(store: str) -> Iterator[tuple[str, str]]:
    """A Redis URL that cannot be dialled as written (the messages never repeat the URL: it
    may carry a password)."""
    if store.startswith(("redis+cluster://", "rediss+cluster://")):
        from verifier.store.slots import ClusterURL  # verifier.store imports this module

        try:
            ClusterURL.parse(store)
        except ConfigError as err:
            yield "store", str(err).removeprefix("VERIFIER_STORE: ")
        return
    if not store.startswith(("redis://", "rediss://")):
        return
    parts = urlsplit(store)
    if _port(parts) == 0:  # out of range, not a number, or 0
        yield "store", "the Redis port must be a number from 1 to 65535"
    path = parts.path.strip("/")
    if path and not re.fullmatch(r"[0-9]+", path):
        yield (
            "store",
            "the Redis database (the URL's path) must be a number, e.g. redis://host:6379/0",
        )


def _tls_problems(
    store: str, ca_file: str, cert_file: str, key_file: str
) -> Iterator[tuple[str, str]]:
    """The TLS files of a Redis store: only for rediss:// and rediss+cluster://, a certificate
    only with its key."""
    if (ca_file or cert_file or key_file) and not store.startswith(_TLS_SCHEMES):
        named = "redis_ca_file" if ca_file else "redis_cert_file" if cert_file else "redis_key_file"
        yield (
            named,
            "TLS files are used only with a rediss:// or rediss+cluster:// store; "
            "the store is not TLS",
        )
    elif cert_file and not key_file:
        yield "redis_key_file", "the client certificate (VERIFIER_REDIS_CERT_FILE) needs its key"
    elif key_file and not cert_file:
        yield "redis_cert_file", "the client key (VERIFIER_REDIS_KEY_FILE) needs its certificate"


@dataclass(frozen=True)
class SidecarSettings(Listening):
    """Everything `verifier sidecar` needs. Durations are milliseconds, amounts fen."""

    upstream: str = ""  # the central service, http(s)://host:port (required)
    gateway_credential: str = ""  # <gateway id>.<secret> from `verifier gateways add`
    journal: str = "sidecar.db"  # the offline journal (SQLite)
    trust_list: str = ""  # local copy of the signed trust list; default <journal>.trust.paseto
    root_key: str = ""  # path of the root public key (required)
    upstream_timeout_ms: int = setting(300, low=1, high=60_000)  # then the scan goes offline
    offline_limit: int = setting(2, low=0, high=1_000_000)  # acceptances per holder per window
    offline_window: int = setting(86_400_000, low=1, parse=parse_duration)  # 24h
    offline_max_amount: int = setting(50_000, parse=parse_amount)  # fen per holder per window
    offline_max_age: int = setting(43_200_000, parse=parse_duration)  # 12h, then 503
    sync_interval: int = setting(10_000, low=100, parse=parse_duration)  # directory, trust list

    @property
    def trust_list_path(self) -> str:
        return self.trust_list or self.journal + ".trust.paseto"

    def problems(self) -> Iterator[tuple[str, str]]:
        """(field, message) for each rule the settings break; nothing when they are usable."""
        yield from _upstream_problems(self.upstream)
        if not is_gateway_credential(self.gateway_credential):
            yield (
                "gateway_credential",
                "required: <gateway id>.<secret>, as printed by `verifier gateways add`",
            )
        yield from self.listening_problems()
        if not self.journal:
            yield "journal", "path of the journal file is required"
        for name, path in (("journal", self.journal), ("trust_list", self.trust_list)):
            folder = os.path.dirname(path) or "."
            if path and not os.path.isdir(folder):
                yield name, f"the folder {folder!r} does not exist"
        if not self.root_key:
            yield "root_key", "path of the root public key is required"


def _port(parts: SplitResult) -> int | None:
    """A URL's port; None when it names none, 0 when it is not a number from 1 to 65535."""
    try:
        return parts.port
    except ValueError:
        return 0


def _upstream_problems(url: str) -> Iterator[tuple[str, str]]:
    """The centre's base URL: http(s)://host[:port], nothing after it."""
    shape = "the central service's URL, http://host:port or https://host[:port]"
    if not url.startswith(("http://", "https://")):
        yield "upstream", shape
        return
    parts = urlsplit(url)
    if not parts.hostname or _port(parts) == 0:
        yield "upstream", f"{shape} (a host, and a port from 1 to 65535)"
    elif parts.path.strip("/") or parts.query or parts.fragment or parts.username:
        yield "upstream", f"{shape}, with no path, query or user after it"


# The settings classes that share one config file: a key none of them has is a typo.
FILE_SETTINGS: tuple[type, ...] = (Settings, AdminSettings, SidecarSettings)


def load(
    cls: type[S],
    environ: Mapping[str, str],
    overrides: Mapping[str, object] | None = None,
    config_file: str | None = None,
) -> S:
    """``cls`` (one of :data:`FILE_SETTINGS`) read by :func:`verifier.config_loader.load`."""
    return config_loader.load(cls, environ, overrides, config_file, FILE_SETTINGS)


def load_settings(
    environ: Mapping[str, str],
    overrides: Mapping[str, object] | None = None,
    config_file: str | None = None,
) -> Settings:
    """The settings of `verifier serve`: ``load(Settings, …)``."""
    return load(Settings, environ, overrides, config_file)


def _split_listen(text: str) -> tuple[str, int] | None:
    m = _LISTEN.fullmatch(text)
    if m is None or not 0 <= int(m[2]) < 65536:
        return None
    return m[1].strip("[]") or "0.0.0.0", int(m[2])
