"""Typed configs: YAML or dict -> a family's dataclass, with errors that name the key.

Every tokenizer class carries a ``Config`` dataclass. A config file is flat YAML whose
``tokenizer`` key names the registry entry; nested dataclass fields are nested mappings
and can be overridden with dotted keys (``model.num_tokens=64``). Unknown keys, values
of the wrong type and impossible values all raise :class:`ConfigError` naming the key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Union

import yaml

#: Keys of config.json that are metadata, not config fields.
RESERVED_KEYS = ("tokenizer", "tokzoo_version", "training")


class ConfigError(ValueError):
    """A config key is unknown, has the wrong type, or has an impossible value."""


def check(condition: bool, key: str, message: str) -> None:
    """Raise ConfigError for ``key`` unless ``condition`` holds (used in ``__post_init__``)."""
    if not condition:
        raise ConfigError(f"config key '{key}': {message}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert only lossless cases (int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"config key '{key}': must be one of {choices}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} for '{key}'")


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"config '{prefix.rstrip('.') or cls.__name__}': expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}' (known keys: {known})")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if prefix:  # re-raise with the nested path in front of the key
            raise ConfigError(str(err).replace("config key '", f"config key '{prefix}", 1)) from None
        raise


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain JSON/YAML-ready data."""
    return dataclasses.asdict(config)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """``"model.depth=12"`` -> ``("model.depth", 12)``; the value is read as a YAML scalar."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not of the form key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted-key ``overrides`` set (nested mappings created)."""
    out = _deep_copy(data)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"config key '{'.'.join(parts[: i + 1])}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def resolve(name_or_config: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None):
    """Registry name, YAML path or dict (+ overrides) -> ``(tokenizer_class, config)``."""
    from . import registry

    if isinstance(name_or_config, Mapping):
        data = dict(name_or_config)
    else:
        text = str(name_or_config)
        if text.endswith((".yaml", ".yml")) or Path(text).is_file():
            data = load_yaml(text)
            if "tokenizer" not in data:
                raise ConfigError(f"config file {text}: missing the 'tokenizer' key naming the family")
        else:
            data = {"tokenizer": text}
    data = apply_overrides(data, overrides or {})
    name = data.pop("tokenizer", None)
    if not isinstance(name, str):
        raise ConfigError("config key 'tokenizer': must name a registered tokenizer")
    for key in RESERVED_KEYS[1:]:  # metadata of a saved config.json
        data.pop(key, None)
    cls = registry.get(name)
    return cls, from_dict(cls.Config, data)
