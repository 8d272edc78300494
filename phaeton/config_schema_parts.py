"""Building blocks of the config schema: one function per kind of key.

`phaeton.config_schema` assembles the whole schema from them, and so do the parts that bring
their own section (a charger brand in `phaeton.chargers.registry`). This module imports
nothing of phaeton, so any of them can use it without an import cycle.

The extension keywords they write (`x-unit`, `x-pattern-hint`, `x-format`, `x-format-hint`,
`x-time`) are described in `phaeton.config_schema`.
"""
from __future__ import annotations

from typing import Any

TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
TIME_HINT = 'a time "HH:MM" from 00:00 to 23:59'

FORMAT_HINTS = {
    "timezone": 'an IANA time zone name this system knows, such as "Europe/Berlin" or "UTC"',
    "host": "a host name or IP address (letters, digits, hyphens and dots) without a port",
    "location": "an absolute file path (starting with /) or an http:// or https:// URL",
    "password-hash": "a hash made by the web UI (scrypt$N$r$p$salt$hash)",
}


def number(default: float, description: str, unit: str | None = None, *,
           minimum: float | None = None, maximum: float | None = None,
           exclusive_minimum: float | None = None, integer: bool = False,
           nullable: bool = False) -> dict[str, Any]:
    """A numeric key: `integer` for counts, ids and ports, `number` otherwise."""
    kind = "integer" if integer else "number"
    schema: dict[str, Any] = {
        "type": [kind, "null"] if nullable else kind,
        "default": default,
        "description": description,
    }
    if unit:
        schema["x-unit"] = unit
    if minimum is not None:
        schema["minimum"] = minimum
    if exclusive_minimum is not None:
        schema["exclusiveMinimum"] = exclusive_minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def seconds(default: float, description: str, *, minimum: float = 0,
            maximum: float = 3600) -> dict[str, Any]:
    """A duration in seconds (0..1 h unless told)."""
    return number(default, description, "s", minimum=minimum, maximum=maximum)


def formatted(schema: dict[str, Any], fmt: str) -> dict[str, Any]:
    """`schema` of a string a later stage parses: checked by `phaeton.config` (see
    `phaeton.config_schema`)."""
    return {**schema, "x-format": fmt, "x-format-hint": FORMAT_HINTS[fmt]}


def zone(default: str, description: str) -> dict[str, Any]:
    """An IANA time zone name."""
    return formatted(string(default, description, min_length=1, max_length=64), "timezone")


def host(default: str | None, description: str) -> dict[str, Any]:
    """A host name or IP address without a port."""
    return formatted(string(default, description, min_length=1, max_length=253), "host")


def time_of_day(default: str | None, description: str, *, pattern: str = TIME_PATTERN,
                hint: str = TIME_HINT) -> dict[str, Any]:
    """A local time of day "HH:MM" (quoted in YAML)."""
    return {**string(default, description, pattern=pattern, hint=hint), "x-time": True}


def port(default: int, description: str) -> dict[str, Any]:
    """A TCP port."""
    return number(default, description, integer=True, minimum=1, maximum=65535)


def boolean(default: bool, description: str) -> dict[str, Any]:
    """A true/false key."""
    return {"type": "boolean", "default": default, "description": description}


def string(default: str | None, description: str, *, pattern: str | None = None,
           hint: str | None = None, min_length: int | None = None,
           max_length: int | None = None, nullable: bool = False,
           enum: list[str] | None = None) -> dict[str, Any]:
    """A text key; `pattern` needs a `hint` saying what it means in words."""
    schema: dict[str, Any] = {
        "type": ["string", "null"] if nullable else "string",
        "description": description,
    }
    if default is not None or nullable:
        schema["default"] = default
    if enum is not None:
        schema["enum"] = enum + ([None] if nullable else [])
    if min_length is not None:  # before pattern: "must not be empty" is the clearer message
        schema["minLength"] = min_length
    if pattern is not None:
        schema["pattern"] = pattern
        schema["x-pattern-hint"] = hint
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def section(description: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A mapping of known keys; unknown keys are errors (typos are caught)."""
    return {
        "type": "object",
        "description": description,
        "default": {},
        "additionalProperties": False,
        "properties": properties,
        **extra,
    }

