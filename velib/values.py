"""Victron's D-Bus value conventions.

- Invalid (None) travels as an empty int32 array `ai []`; any empty array received means None.
- float → d, bool → b (checked before int), int → i (x when it overflows int32), str → s,
  dict → a{sv}, list → array; an *empty list of values* is sent as `au []` by velib_python, but
  any empty array is read back as invalid, so only None should be used for "no value".
- Writers send all sorts of types for one path (GUI numbers, MQTT JSON int/float/bool/null,
  the `dbus` CLI strings); `coerce()` converts a written value to the path's own type or refuses.
"""
from __future__ import annotations

import math
import re
from typing import Any

from dbus_next import Variant
from dbus_next.signature import SignatureTree

from .wire import signature_of  # one type mapping for the whole library


_new_variant = Variant.__new__
_types: dict[str, Any] = {}


def _variant(signature: str, value: Any) -> Variant:
    # Fast path: we already know the value matches the signature, so skip dbus-next's
    # verification of every value (it dominates the cost of publishing a batch).
    v = _new_variant(Variant)
    t = _types.get(signature)
    if t is None:
        t = _types[signature] = SignatureTree._get(signature).types[0]
    v.type = t
    v.signature = signature
    v.value = value
    return v


INVALID_SIGNATURE = "ai"


def wrap(value: Any) -> Variant:
    """A Python value as a Variant the Victron way (None → `ai []`)."""
    sig = signature_of(value)
    if sig == "ai" and value is None:
        return _variant("ai", [])
    if sig == "a{sv}":
        return _variant(sig, {str(k): wrap(v) for k, v in value.items()})
    if sig == "av":
        return _variant(sig, [wrap(v) for v in value])
    if sig.startswith("a"):
        return _variant(sig, list(value))
    if sig == "d" and type(value) is not float:
        value = float(value)
    return _variant(sig, value)


def unwrap(value: Any) -> Any:
    """A received value (Variant or plain) as Python; any empty array means invalid (None)."""
    if isinstance(value, Variant):
        sig = value.signature
        value = value.value
        if sig.startswith("a") and not sig.startswith("a{") and len(value) == 0:
            return None
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        if not value:
            return None
        return [unwrap(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return None if not value else list(value)
    return value


class CoercionError(ValueError):
    """A written value that cannot become the path's type."""


_TRUE_STRINGS = {"true", "yes", "on"}
_FALSE_STRINGS = {"false", "no", "off"}


# What a writer may send as a number in text: ASCII digits only. Python's own int() and
# float() also take full-width and other Unicode digits, underscores, "nan" and "infinity".
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEXADECIMAL = re.compile(r"-?0[xX][0-9a-fA-F]+")


def coerce(value: Any, kind: type | None) -> Any:
    """Convert a written (already unwrapped) value to `kind` (int, float, str, bool, or None for
    'any type'). Numeric strings, bools and floats are accepted where they mean the same thing;
    None stays None (invalid). Raises CoercionError otherwise.
    """
    if value is None or kind is None:
        return value
    if kind is int:
        return _to_int(value)
    if kind is float:
        return _to_float(value)
    if kind is bool:
        return _to_bool(value)
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, int, float)):
            return str(value)
        raise CoercionError(f"expected text, got {type(value).__name__}")
    if isinstance(value, kind):
        return value
    raise CoercionError(f"expected {kind.__name__}, got {type(value).__name__}")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        if not _DECIMAL.fullmatch(value.strip()):
            raise CoercionError(f"not a number: {value!r}")
        result = float(value.strip())
    else:
        raise CoercionError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(result):
        raise CoercionError(f"not a finite number: {value!r}")
    return result


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    number = _to_float(value) if not isinstance(value, str) else None
    if isinstance(value, str):
        text = value.strip()
        if _HEXADECIMAL.fullmatch(text):
            return int(text, 16)
        number = _to_float(text)
    if number != int(number):
        raise CoercionError(f"not a whole number: {value!r}")
    return int(number)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_STRINGS:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE_STRINGS:
        return False
    number = _to_int(value)
    if number in (0, 1):
        return bool(number)
    raise CoercionError(f"expected 0 or 1, got {value!r}")
