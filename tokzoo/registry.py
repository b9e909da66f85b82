"""One registry for every modality: name -> tokenizer class.

A family is a subpackage of ``tokzoo`` whose modules decorate their classes with
``@register("name")``. Families are imported on first use of the registry, so a new
family is one new folder and nothing else changes; ``import tokzoo`` stays light.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

_REGISTRY: dict[str, type] = {}
#: Subpackages that are shared infrastructure, not tokenizer families.
_NOT_FAMILIES = frozenset({"metrics", "quantize", "training", "kernels"})
_MODALITIES = ("text", "image", "audio")
_discovered = False


def register(name: str):
    """Class decorator: make ``cls`` reachable as ``tokzoo.create(name)``."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"tokenizer name {name!r} is registered twice")
        if getattr(cls, "modality", None) not in _MODALITIES:
            raise ValueError(f"{cls.__name__}.modality must be one of {_MODALITIES}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    import tokzoo

    for info in pkgutil.iter_modules(tokzoo.__path__):
        if info.ispkg and info.name not in _NOT_FAMILIES:
            importlib.import_module(f"tokzoo.{info.name}")


def get(name: str) -> type:
    """The class registered as ``name``; a ValueError lists the known names otherwise."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown tokenizer {name!r} (known: {known})") from None


def list_tokenizers(modality: str | None = None) -> list[str]:
    """Registered names, optionally only those of one modality."""
    _discover()
    if modality is not None and modality not in _MODALITIES:
        raise ValueError(f"modality must be one of {_MODALITIES}, got {modality!r}")
    return sorted(n for n, c in _REGISTRY.items() if modality is None or c.modality == modality)


def create(name: str, **config: Any):
    """An untrained tokenizer from its registry defaults and keyword overrides."""
    from .config import resolve

    cls, cfg = resolve(name, config)
    return cls(cfg)
