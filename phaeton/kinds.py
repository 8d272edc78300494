"""What the charger and tariff registries share: a table of kinds by name (registration order;
the first is the default) and builders named "module:function", imported only when used."""
from __future__ import annotations

import importlib
from typing import Any, Callable, TypeVar

Kind = TypeVar("Kind")


def add_kind(table: dict[str, Kind], name: str, kind: Kind, noun: str) -> Kind:
    """Add `kind` under `name`; a second kind with the same name is refused ("<noun> 'x' is
    already registered")."""
    if name in table:
        raise ValueError(f"{noun} {name!r} is already registered")
    table[name] = kind
    return kind


def find_kind(table: dict[str, Kind], name: Any) -> Kind | None:
    """The kind called `name`, None for an unknown name or one that is not text."""
    return table.get(name) if isinstance(name, str) else None


def load_builder(spec: str) -> Callable[..., Any]:
    """The function a "module:function" spec names, importing its module now."""
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)
