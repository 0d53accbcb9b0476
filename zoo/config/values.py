"""Setting values from TOML recipes and `--set KEY=VALUE`: each converted to its field's declared type, or a
ConfigError naming the setting."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from zoo.config.sections import SECTIONS
from zoo.errors import ConfigError


def field_types(cls: type) -> dict[str, Any]:
    """The declared type of each field of a dataclass (resolving string annotations)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # an annotation that names something the plugin module does not define
        raise ConfigError(f"cannot read the field types of {cls.__qualname__}: {type(exc).__name__}: {exc}") from None
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(cls)}


def coerce(value: Any, kind: Any, where: str) -> Any:
    """Convert a TOML value or a command-line string to a field's declared type, or raise ConfigError.

    Types: bool, int, float (finite only), str, `X | None` ("none" or "null" on the command line),
    `Literal[...]`, `list[X]` and `tuple[X, ...]` / `tuple[X, Y]` (TOML arrays, or "1,2" / "[1, 2]").
    """
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if type(None) in args and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))):
            return None
        for option in options:
            try:
                return coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(kind)}")
    if origin is typing.Literal:
        for allowed in args:
            try:
                if coerce(value, type(allowed), where) == allowed:
                    return allowed
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
    if origin in (list, tuple):
        items = _items(value, where)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(items) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values ({_type_name(kind)}), got {len(items)}")
            return tuple(coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(items, args)))
        item_kind = args[0] if args else str
        converted = [coerce(v, item_kind, f"{where}[{i}]") for i, v in enumerate(items)]
        return tuple(converted) if origin is tuple else converted
    if kind not in (bool, int, float, str):
        if isinstance(kind, type) and isinstance(value, kind):
            return value
        raise ConfigError(f"{where}: the type {_type_name(kind)} cannot be set from {value!r}")
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                lowered = text.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return lowered in ("true", "1", "yes")
            value = kind(text)
        except ValueError:
            raise ConfigError(f"{where}: {text!r} is not a valid {kind.__name__}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise ConfigError(f"{where}: expected a {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    return value


def _items(value: Any, where: str) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return [part.strip() for part in text.split(",") if part.strip()]
    raise ConfigError(f"{where}: expected a list, got {value!r}")


def _type_name(kind: Any) -> str:
    return kind.__name__ if isinstance(kind, type) and not typing.get_args(kind) else str(kind).replace("typing.", "")


def build_section(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate a section dataclass from defaults plus `values`, checking names and types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table of settings, got {type(values).__name__}")
    kinds = field_types(cls)
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(kinds)}")
    kwargs = {k: coerce(v, kinds[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_overrides(pairs: list[str], encoder_cls: type) -> dict[str, dict[str, str]]:
    """Turn ["train.lr=1e-3", "hidden_size=64"] into {"train": {"lr": "1e-3"}, "encoder": {...}}."""
    known = {"encoder": field_types(encoder_cls)} | {name: field_types(cls) for name, cls in SECTIONS.items()}
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, for example train.lr=0.001")
        if "." in key:
            section, _, name = key.partition(".")
            if section not in known:
                raise ConfigError(f"--set {key}: unknown section {section!r}; sections: {', '.join(known)}")
            if name not in known[section]:
                raise ConfigError(f"--set {key}: unknown key; {section} has {', '.join(known[section])}")
        else:
            owners = [s for s, names in known.items() if key in names]
            if not owners:
                raise ConfigError(f"--set {key}: no section has this key; see `zoo info NAME`")
            if len(owners) > 1:
                raise ConfigError(f"--set {key}: ambiguous, use one of {', '.join(f'{s}.{key}' for s in owners)}")
            section, name = owners[0], key
        out.setdefault(section, {})[name] = value
    return out
