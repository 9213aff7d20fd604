"""Benefit policy files: JSON or TOML over the built-in table of :mod:`verifier.benefits`.

Policy files (JSON or TOML) override the built-in table, then per region::

    {"default": {"average_salary": "120000", "inpatient": {"resident": 85}},
     "regions": {"110101": {"outpatient": 75, "outpatient_threshold_percent": "8.5"}}}

A service's value is a percent (integer, or decimal string with up to 2 decimals) for every
scheme, or a table of percents by scheme merged over the current one. A region's section
applies over the file's ``default``. A holder's region finds its policy by exact code, then
its prefecture (``XXXX00``), then its province (``XX0000``): pooling is by city, while a
holder's region may be a county.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from verifier.benefits import BASIS_POINTS, BUILTIN, SERVICES, BenefitPolicy, RegionPolicy
from verifier.errors import ConfigError
from verifier.money import MoneyError, parse_yuan
from verifier.records import SCHEMES


def load_policy(path: str | os.PathLike[str]) -> BenefitPolicy:
    """Read a benefit policy from a ``.json`` or ``.toml`` file (see the module docstring).

    Raises ConfigError naming the file and the bad key.
    """
    name = os.fspath(path)
    if not name.endswith((".json", ".toml")):
        raise ConfigError(f"{name}: a benefit policy file must end in .json or .toml")
    try:
        with open(name, "rb") as f:
            raw = f.read()
        if name.endswith(".toml"):
            data: Any = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except (OSError, ValueError) as err:  # ValueError covers JSON, TOML and UTF-8 errors
        raise ConfigError(f"{name}: cannot read benefit policy: {err}") from err
    try:
        return policy_from_mapping(data)
    except ConfigError as err:
        raise ConfigError(f"{name}: {err}") from err


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A key written twice is a typo whose second value would silently win.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def policy_from_mapping(data: Any) -> BenefitPolicy:
    """Build a policy from parsed JSON/TOML data; raises ConfigError naming the bad key."""
    section = _table(data, "benefit policy")
    for key in section:
        if key not in ("default", "regions"):
            raise ConfigError(f"unknown key {key!r} (expected 'default' and 'regions')")
    base = _apply(BUILTIN, section.get("default", {}), "default")
    regions: dict[str, RegionPolicy] = {}
    for code, override in _table(section.get("regions", {}), "regions").items():
        where = f"regions.{code}"
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            raise ConfigError(f"{where}: a region code must be 6 digits")
        regions[code] = _apply(base, override, where)
    return BenefitPolicy(base=base, regions=MappingProxyType(regions))


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a table/object")
    return value


def _apply(base: RegionPolicy, override: Any, where: str) -> RegionPolicy:
    ratios_bp = {svc: dict(by_scheme) for svc, by_scheme in base.ratios_bp.items()}
    salary, threshold = base.average_salary_fen, base.outpatient_threshold_bp
    for key, value in _table(override, where).items():
        path = f"{where}.{key}"
        if key in SERVICES:
            ratios_bp[key] = _scheme_ratios(value, ratios_bp[key], path)
        elif key == "average_salary":
            salary = _yuan(value, path)
        elif key == "outpatient_threshold_percent":
            threshold = _percent(value, path)
        else:
            raise ConfigError(f"unknown key {path!r}")
    frozen = {svc: MappingProxyType(by_scheme) for svc, by_scheme in ratios_bp.items()}
    return RegionPolicy(MappingProxyType(frozen), salary, threshold)


def _scheme_ratios(value: Any, current: dict[str, int], path: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        # One percent for every scheme: the other schemes fall back to "employee".
        return {"employee": _percent(value, path)}
    merged = dict(current)
    for scheme, percent in value.items():
        if scheme not in SCHEMES:
            bad = f"{path}.{scheme}"
            raise ConfigError(f"unknown key {bad!r}; schemes are {', '.join(SCHEMES)}")
        merged[scheme] = _percent(percent, f"{path}.{scheme}")
    return merged


def _percent(value: Any, path: str) -> int:
    """A percent (int, or decimal string with at most 2 decimals) as basis points."""
    if isinstance(value, int) and not isinstance(value, bool):
        bp = value * 100
    elif isinstance(value, str):
        try:
            bp = parse_yuan(value)  # same grammar: hundredths of a percent are basis points
        except MoneyError as err:
            raise ConfigError(f"{path}: {err}") from err
    else:
        kind = type(value).__name__
        raise ConfigError(f"{path}: must be a percent (integer or decimal string), not {kind}")
    if not 0 <= bp <= BASIS_POINTS:
        raise ConfigError(f"{path}: must be a percent from 0 to 100")
    return bp


def _yuan(value: Any, path: str) -> int:
    """An amount of yuan (int, or decimal string) as fen."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # same range and sign checks as strings
    if not isinstance(value, str):
        raise ConfigError(f"{path}: must be an amount of yuan (integer or decimal string)")
    try:
        return parse_yuan(value)
    except MoneyError as err:
        raise ConfigError(f"{path}: {err}") from err
