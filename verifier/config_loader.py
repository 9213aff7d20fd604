"""How a settings class is read: flags over ``VERIFIER_*`` over a TOML file over defaults.

A settings class is a frozen dataclass of ``bool``, ``int``, ``float`` and ``str`` fields: field
``x`` is read from ``VERIFIER_X`` and from key ``x`` of the config file. Limits of one field go in
the field (:func:`setting`); rules across fields in a ``problems()`` method that yields
``(field name, message)``. :func:`load` builds any such class; every error is a ConfigError that
names where the bad value came from. The classes themselves are in :mod:`verifier.config`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from verifier.durations import format_duration, parse_duration
from verifier.errors import ConfigError

ENV_PREFIX = "VERIFIER_"
CONFIG_VARIABLE = "VERIFIER_CONFIG"
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")

S = TypeVar("S")
# Reads one raw value (text from the environment, or a TOML value); raises ConfigError whose
# message starts with the label it is given (the variable, or the file and key).
Parser = Callable[[str, object], object]


def setting(
    default: object,
    *,
    low: float | None = None,
    high: float | None = None,
    parse: Parser | None = None,
) -> Any:
    """A settings field: its default, optional inclusive bounds, optional parser of raw values."""
    return dataclasses.field(default=default, metadata={"low": low, "high": high, "parse": parse})


def load(
    cls: type[S],
    environ: Mapping[str, str],
    overrides: Mapping[str, object] | None = None,
    config_file: str | None = None,
    file_settings: tuple[type, ...] = (),
) -> S:
    """An instance of the settings dataclass ``cls`` from flags, environment and config file.

    ``overrides`` maps field names to flag values (None = flag not given); ``config_file``
    (the ``--config`` flag) wins over ``VERIFIER_CONFIG`` in ``environ``. A key of the file is
    refused unless ``cls`` or one of ``file_settings`` (the classes sharing the file) has it.
    Raises ConfigError naming the variable, or the file and key, of the first bad value.
    """
    kinds = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    raw: dict[str, object] = {}
    labels = {name: ENV_PREFIX + name.upper() for name in fields}
    path = config_file or environ.get(CONFIG_VARIABLE)
    if path:
        known = set(fields) | {f.name for c in file_settings for f in dataclasses.fields(c)}
        for key, value in _read_file(path).items():
            if key not in known:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            if key in fields:
                raw[key] = value
                labels[key] = f"config file {path}, key {key}"
    for name in fields:
        variable = ENV_PREFIX + name.upper()
        if variable in environ:
            raw[name] = environ[variable]
            labels[name] = variable
    for name, value in (overrides or {}).items():
        if name not in fields:
            raise TypeError(f"{cls.__name__} has no setting {name!r}")  # a caller's bug
        if value is not None:
            raw[name] = value
            labels[name] = ENV_PREFIX + name.upper()
    values = {name: _convert(fields[name], kinds[name], raw[name], labels[name]) for name in raw}
    settings = cls(**values)
    for name, field in fields.items():
        _check_bounds(field, getattr(settings, name), labels[name])
    for name, message in getattr(settings, "problems", lambda: ())():
        raise ConfigError(f"{labels[name]}: {message}")
    return settings


def parse_bool(label: str, raw: object) -> bool:
    """A yes/no value (1/true/yes/on, 0/false/no/off/empty); ConfigError naming ``label``."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"{label}: expected true or false, got {raw!r}")


def _read_file(path: str) -> dict[str, object]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path}: {err}") from err


def _convert(field: dataclasses.Field[Any], kind: object, raw: object, label: str) -> object:
    parse = field.metadata.get("parse")
    if parse is not None:
        return parse(label, raw)
    if kind is bool:
        return parse_bool(label, raw)
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
            return int(raw.strip())
        raise ConfigError(f"{label}: expected an integer, got {raw!r}")
    if kind is float:
        value = math.nan
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            value = float(raw)
        elif isinstance(raw, str):
            try:
                value = float(raw.strip())
            except ValueError:
                pass  # reported below with the label
        if not math.isfinite(value):
            raise ConfigError(f"{label}: expected a number, got {raw!r}")
        return value
    if kind is str:
        if isinstance(raw, str):
            return raw.strip()
        raise ConfigError(f"{label}: expected a string, got {raw!r}")
    raise TypeError(f"setting {field.name} has a type the loader cannot read: {kind!r}")


def _check_bounds(field: dataclasses.Field[Any], value: object, label: str) -> None:
    low, high = field.metadata.get("low"), field.metadata.get("high")
    if not isinstance(value, int | float) or (low is None and high is None):
        return
    # A duration is held in milliseconds; its bounds are said with units, as it was written.
    said = _duration if field.metadata.get("parse") is parse_duration else _number
    if low is not None and high is not None:
        bound = f"between {said(low)} and {said(high)}"
    elif low is not None:
        bound = f"at least {said(low)}"
    else:
        bound = f"at most {said(high)}"
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{label}: must be {bound}, got {said(value)}")


def _duration(ms: object) -> str:
    return format_duration(int(ms)) if isinstance(ms, int | float) and ms > 0 else "0s"


def _number(x: object) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)
