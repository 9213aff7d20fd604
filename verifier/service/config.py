"""Service settings, read once from an injected mapping into a frozen object.

Precedence: command-line flags > environment (``VERIFIER_*``) > config file (TOML) > defaults.
Only the entry point reads ``os.environ``; everything here takes the mapping as an argument.
Every error names the setting that is wrong.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from verifier.errors import ConfigError

_LISTEN = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):([0-9]{1,5})")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Settings:
    """Everything `verifier serve` needs. Field docs name the environment variable."""

    store: str = "redis://127.0.0.1:6379/0"  # VERIFIER_STORE: redis://, rediss:// or memory://
    trust_list: str = ""  # VERIFIER_TRUST_LIST: path of the signed trust list (required)
    root_key: str = ""  # VERIFIER_ROOT_KEY: path of the root public key (required)
    listen: str = "127.0.0.1:8080"  # VERIFIER_LISTEN: HOST:PORT
    workers: int = 1  # VERIFIER_WORKERS: processes sharing the port (SO_REUSEPORT)
    policy: str = ""  # VERIFIER_POLICY: benefit policy file; empty = built-in default
    store_deadline_ms: int = 50  # VERIFIER_STORE_DEADLINE_MS: per store call, then 503
    allow_eviction: bool = False  # VERIFIER_ALLOW_EVICTION: run on an evicting Redis anyway
    auth_cache_seconds: float = 2.0  # VERIFIER_AUTH_CACHE_SECONDS: scanner/institution cache
    max_body_bytes: int = 8192  # VERIFIER_MAX_BODY_BYTES: single verify request body limit
    max_batch_bytes: int = 1048576  # VERIFIER_MAX_BATCH_BYTES: batch request body limit
    trust_poll_seconds: float = 2.0  # VERIFIER_TRUST_POLL_SECONDS: trust file change check
    exp_leeway: int = 30  # VERIFIER_EXP_LEEWAY: seconds accepted after exp
    future_leeway: int = 5  # VERIFIER_FUTURE_LEEWAY: seconds iat/nbf may be ahead
    max_lifetime: int = 300  # VERIFIER_MAX_LIFETIME: longest exp - iat accepted
    log_level: str = "info"  # VERIFIER_LOG_LEVEL
    fast_path: bool = True  # VERIFIER_FAST_PATH: false = every request through aiohttp

    @property
    def host_port(self) -> tuple[str, int]:
        m = _LISTEN.fullmatch(self.listen)
        if m is None or not 0 <= int(m[2]) < 65536:
            raise ConfigError(f"VERIFIER_LISTEN: expected HOST:PORT, got {self.listen!r}")
        return m[1].strip("[]") or "0.0.0.0", int(m[2])


def parse_bool(env: str, raw: object) -> bool:
    """A yes/no setting (1/true/yes/on, 0/false/no/off/empty); ConfigError naming ``env``."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"{env}: expected true or false, got {raw!r}")


def _convert(name: str, kind: Any, raw: object) -> object:
    env = f"VERIFIER_{name.upper()}"
    if kind is bool or kind == "bool":
        return parse_bool(env, raw)
    if kind is int or kind == "int":
        try:
            value = int(str(raw).strip())
        except ValueError as err:
            raise ConfigError(f"{env}: expected an integer, got {raw!r}") from err
        if value < 0:
            raise ConfigError(f"{env}: must not be negative")
        return value
    if kind is float or kind == "float":
        try:
            fvalue = float(str(raw).strip())
        except ValueError as err:
            raise ConfigError(f"{env}: expected a number, got {raw!r}") from err
        if not 0 <= fvalue < 1e6:
            raise ConfigError(f"{env}: out of range")
        return fvalue
    return str(raw).strip()


def load_settings(
    environ: Mapping[str, str],
    overrides: Mapping[str, object] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Build Settings from a config file, the environment mapping and flag overrides."""
    known = {f.name: f.type for f in fields(Settings)}
    values: dict[str, object] = {}
    path = config_file or environ.get("VERIFIER_CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"config file {path}: {err}") from err
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            values[key] = raw
    for name in known:
        env = f"VERIFIER_{name.upper()}"
        if env in environ:
            values[name] = environ[env]
    for name, raw in (overrides or {}).items():
        if raw is not None:
            values[name] = raw
    settings = Settings(**{k: _convert(k, known[k], v) for k, v in values.items()})  # type: ignore[arg-type]
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    s.host_port  # noqa: B018 - raises ConfigError when malformed
    if not s.store.startswith(("redis://", "rediss://", "memory://")):
        raise ConfigError("VERIFIER_STORE: expected redis://…, rediss://… or memory://")
    if not 1 <= s.workers <= 64:
        raise ConfigError("VERIFIER_WORKERS: must be between 1 and 64")
    if s.workers > 1 and s.store.startswith("memory://"):
        raise ConfigError(
            "VERIFIER_WORKERS: the memory:// store lives in one process; use --workers 1 or Redis"
        )
    if not s.trust_list:
        raise ConfigError("VERIFIER_TRUST_LIST: path of the signed trust list is required")
    if not s.root_key:
        raise ConfigError("VERIFIER_ROOT_KEY: path of the root public key is required")
    if not 1 <= s.store_deadline_ms <= 10000:
        raise ConfigError("VERIFIER_STORE_DEADLINE_MS: must be between 1 and 10000")
    if not 256 <= s.max_body_bytes <= 65536:
        raise ConfigError("VERIFIER_MAX_BODY_BYTES: must be between 256 and 65536")
    if s.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("VERIFIER_LOG_LEVEL: one of debug, info, warning, error")
