"""Load, validate and save phaeton's config.yaml.

The schema (keys, defaults, bounds, descriptions) is `phaeton.config_schema.CONFIG_SCHEMA`; this
module runs it and turns every problem into a `ConfigProblem` a user can act on: the dotted key
path (`schedule.windows[0].start`), the line in the file and a message ("must be between 6 and
80 A, got 100"). All problems are reported at once. Besides the schema, values a later stage
parses are checked here with that stage's rule (`format_problems`: time zones, hosts, the price
file's location, the password hash), and rules between keys (`cross_field_problems`).

The loaded result is a `Config`: an immutable nested mapping whose keys can be read as items or
as attributes (`config["charger"]["max_current_a"] == config.charger.max_current_a`); lists
become tuples. Every key is present (defaults applied). `config_to_dict()` gives plain, mutable
dicts and lists back (for the web UI and JSON).
"""
from __future__ import annotations

import copy
import ipaddress
import math
import os
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from phaeton.config_layout import first_charger_section, layout_problems, single_charger_keys_with_several
from phaeton.config_merge import merge_onto
from phaeton.config_schema import CONFIG_SCHEMA
from phaeton.config_schema_parts import FORMAT_HINTS, TIME_PATTERN
from phaeton.config_validate import SchemaError, Validator
from phaeton.planning.tariffs.registry import TARIFF_KINDS
from phaeton.store.state_file import write_file_atomically
from phaeton.vehicles.schema import vehicle_problems

_VALIDATOR = Validator(CONFIG_SCHEMA)

PathParts = tuple[Any, ...]


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config: where (key path, 1-based line or None) and what."""

    key_path: str
    line: int | None
    message: str

    def format(self, source: str) -> str:
        """`SOURCE:LINE: key.path: message`, the form `phaeton check-config` prints."""
        where = f"{source}:{self.line}" if self.line is not None else source
        if self.key_path:
            return f"{where}: {self.key_path}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(ValueError):
    """The config is invalid; `problems` lists every problem found, in file order."""

    def __init__(self, problems: list[ConfigProblem], source: str = "<config>"):
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(p.format(source) for p in self.problems))


class ConfigUnreadable(ConfigError):
    """The config file could not be read at all (missing, a directory, no permission, not text)."""


class Config(Mapping):
    """An immutable, fully defaulted configuration: `config.site.fuse_a` or `config["site"]`."""

    __slots__ = ("_items",)

    def __init__(self, data: Mapping[str, Any]):
        object.__setattr__(self, "_items", {key: _freeze(value) for key, value in data.items()})

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}{_suggestion(name, self._items)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Config is read-only; build a new one with load_config/save_config")

    def __repr__(self) -> str:
        return f"Config({self._items!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # pickle and deepcopy rebuild from plain data
        return (Config, (config_to_dict(self),))

    def __copy__(self) -> Config:  # immutable: a copy is the same object
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain, mutable dicts and lists (a deep copy)."""
        return config_to_dict(self)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return Config(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item) for item in value)
    return value


def config_to_dict(config: Mapping[str, Any]) -> dict[str, Any]:
    """A plain deep copy of `config` (a `Config` or a dict): dicts and lists, for JSON/YAML."""
    def thaw(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: thaw(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [thaw(item) for item in value]
        return value
    return thaw(config)


# ---------------------------------------------------------------------------------------------
# defaults

def apply_defaults(data: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `data` with every missing key set to its schema default.

    A section left empty in YAML (`site:` with every child commented out reads as null) counts
    as an empty section. Other values of the wrong type are left alone (validation reports
    them); only mappings are filled, including the items of lists of mappings (windows).
    """
    filled = copy.deepcopy(dict(data))
    _fill_defaults(CONFIG_SCHEMA, filled)
    return filled


def _fill_defaults(schema: Mapping[str, Any], value: Any) -> None:
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if value.get(key, 0) is None and sub.get("type") == "object":
                value[key] = {}
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            sub = schema["properties"].get(key)
            if sub is not None:
                _fill_defaults(sub, item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _fill_defaults(schema["items"], item)


_DEFAULTS = apply_defaults({})       # (the charger address has no default: absent here)


def default_config() -> dict[str, Any]:
    """Every key with its default (the charger address is absent: it has none)."""
    return apply_defaults({})


# ---------------------------------------------------------------------------------------------
# reading

def load_config(path: str | os.PathLike) -> Config:
    """Read, validate and default the YAML config at `path`.

    Raises `ConfigUnreadable` when the file cannot be read, `ConfigError` listing every
    problem (with lines) when it is invalid. An empty file means all defaults.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigUnreadable([ConfigProblem("", None, f"cannot read the file: {reason}")],
                               source) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigUnreadable([ConfigProblem(
            "", None, f"not UTF-8 text (byte {exc.start}): is this a YAML file?")], source) from exc
    return parse_config_text(text, source)


def parse_config_text(text: str, source: str = "<config>") -> Config:
    """Validate YAML `text` and return the defaulted `Config`; `source` names it in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        oversized = _oversized_part(node)
        if oversized is not None:
            raise ConfigError([oversized], source)
        data = yaml.SafeLoader("").construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_syntax_problem(exc)], source) from exc
    except RecursionError:
        raise ConfigError([ConfigProblem("", None, "the file is nested too deeply to be a "
                                                   "phaeton config")], source) from None
    lines = _KeyLines(node)
    problems = list(lines.duplicate_problems)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(ConfigProblem(
            "", lines.line_of(()), f"the file must be a mapping of keys (key: value), "
            f"got {_kind_of(data)}"))
        raise ConfigError(problems, source)
    problems += validate_config_data(data, lines)
    if problems:
        raise ConfigError(_sorted(problems), source)
    return Config(apply_defaults(data))


MAX_VALUES = 10_000  # a complete config has about 100; more means runaway YAML aliases


def _oversized_part(node: yaml.Node | None) -> ConfigProblem | None:
    """A problem when aliases make the document expand to more than MAX_VALUES values or refer
    to themselves (both would make validation run forever); None otherwise."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(part: yaml.Node) -> int:
        key = id(part)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise _SelfReference(part)
        visiting.add(key)
        if isinstance(part, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in part.value)
        elif isinstance(part, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in part.value)
        else:
            total = 1
        visiting.discard(key)
        sizes[key] = min(total, MAX_VALUES + 1)
        return sizes[key]

    if node is None:
        return None
    try:
        if size(node) <= MAX_VALUES:
            return None
    except _SelfReference as exc:
        return ConfigProblem("", exc.node.start_mark.line + 1,
                             "invalid YAML: an alias refers to the value that contains it")
    return ConfigProblem("", node.start_mark.line + 1,
                         f"the file expands to more than {MAX_VALUES} values (through YAML "
                         f"aliases?); a phaeton config has about 100")


class _SelfReference(Exception):
    def __init__(self, node: yaml.Node):
        super().__init__("recursive alias")
        self.node = node


def _yaml_syntax_problem(exc: yaml.YAMLError) -> ConfigProblem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {problem}"
    if context:
        message += f" ({context})"
    return ConfigProblem("", line, message)


class _KeyLines:
    """Maps key paths (tuples of keys and list indices) to 1-based lines of a composed YAML."""

    def __init__(self, node: yaml.Node | None):
        self._lines: dict[PathParts, int] = {}
        self.duplicate_problems: list[ConfigProblem] = []
        if node is not None:
            self._lines[()] = node.start_mark.line + 1
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: PathParts) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = key_node.value
                child = path + (key,)
                line = key_node.start_mark.line + 1
                if child in self._lines:
                    # YAML loaders keep the last value: point the lines at the later one.
                    self.duplicate_problems.append(ConfigProblem(
                        format_key_path(child), line,
                        f"appears twice (first on line {self._lines[child]}, this later one "
                        f"wins); remove one"))
                    for known in [p for p in self._lines if p[:len(child)] == child]:
                        del self._lines[known]
                self._lines[child] = line
                self._walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = path + (index,)
                self._lines[child] = item.start_mark.line + 1
                self._walk(item, child)

    def line_of(self, path: PathParts) -> int:
        """The line of `path`, or of its nearest ancestor present in the file (1 at worst)."""
        while path not in self._lines and path:
            path = path[:-1]
        return self._lines.get(path, 1)


def format_key_path(path: PathParts) -> str:
    """`("schedule", "windows", 0, "start")` -> `schedule.windows[0].start`."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# ---------------------------------------------------------------------------------------------
# validation

def validate_config_data(data: Any, lines: _KeyLines | None = None) -> list[ConfigProblem]:
    """Every problem of a config given as plain data (e.g. from the web UI's form).

    Defaults are applied first, so missing keys are fine except the charger address. Lines are
    None unless `lines` (from a parsed file) is given.
    """
    def line_of(path: PathParts) -> int | None:
        return lines.line_of(path) if lines is not None else None

    if not isinstance(data, Mapping):
        return [ConfigProblem("", line_of(()), f"the config must be a mapping of keys, "
                                                f"got {_kind_of(data)}")]
    filled = apply_defaults(data)
    problems: list[ConfigProblem] = []
    bad_paths: set[PathParts] = set()
    for path, message in single_charger_keys_with_several(data, _DEFAULTS):
        bad_paths.add(path)
        problems.append(ConfigProblem(format_key_path(path), line_of(path), message))
    # With several chargers the one-charger section is not used: it is checked as their first.
    entries = filled.get("chargers")
    if isinstance(entries, list) and entries and isinstance(entries[0], Mapping):
        filled["charger"] = first_charger_section(entries[0])
    for path, value in _non_finite_numbers(filled, ()):
        bad_paths.add(path)
        problems.append(ConfigProblem(format_key_path(path), line_of(path),
                                      f"must be a finite number, got {_show(value)}"))
    for error in _VALIDATOR.iter_errors(filled):
        for path, message in _explain(error):
            if path in bad_paths:
                continue
            bad_paths.add(path)
            problems.append(ConfigProblem(format_key_path(path), line_of(path), message))
    for path, message in format_problems(filled, bad_paths):
        bad_paths.add(path)
        problems.append(ConfigProblem(format_key_path(path), line_of(path), message))
    for path, message in cross_field_problems(filled, bad_paths):
        problems.append(ConfigProblem(format_key_path(path), line_of(path), message))
    return _sorted(problems)


def _sorted(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return sorted(problems, key=lambda p: (p.line if p.line is not None else 0, p.key_path))


def _non_finite_numbers(value: Any, path: PathParts) -> Iterator[tuple[PathParts, float]]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite_numbers(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite_numbers(item, path + (index,))


_KIND_WORDS = {
    "integer": "a whole number", "number": "a number", "string": "text",
    "boolean": "true or false", "object": "a mapping of keys", "array": "a list", "null": "null",
}


def _explain(error: SchemaError) -> list[tuple[PathParts, str]]:
    """Turn one schema error into (key path, message) pairs a user understands."""
    path = tuple(error.absolute_path)
    kind = error.validator
    value = error.instance
    schema = error.schema
    bound = error.validator_value
    if kind == "additionalProperties":
        known = schema.get("properties", {})
        return [(path + (key,), f"unknown key {_show(key)}{_suggestion(str(key), known)}")
                for key in value if key not in known]
    if kind == "required":
        found = []
        for key in bound:
            if key in value:
                continue
            when = _schema_at(path + (key,)).get("x-required-when")
            found.append((path + (key,), f"is required when {when}" if when else
                          "is required"))
        return found
    if kind == "type":
        kinds = bound if isinstance(bound, list) else [bound]
        if value is None and path:
            when = _schema_at(path).get("x-required-when")
            if when:                # a conditionally required key left at null
                return [(path, f"is required when {when}")]
        wanted = " or ".join(_KIND_WORDS.get(k, k) for k in kinds)
        message = f"must be {wanted}, got {_show(value)} ({_kind_of(value)})"
        if (schema.get("x-time") or schema.get("pattern") == TIME_PATTERN) \
                and isinstance(value, int) and not isinstance(value, bool):
            message = (f'must be a time in quotes like "22:00", got {_show(value)} (YAML reads '
                       f'an unquoted 22:00 as the number 1320)')
        elif "string" in kinds and isinstance(value, (int, float)) and not isinstance(value, bool):
            message += f': write "{value}" in quotes'
        return [(path, message)]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [(path, f"must be {_range_text(schema)}, got {_show(value)}")]
    if kind == "enum":
        choices = ", ".join(_show(choice) for choice in bound)
        message = f"must be one of {choices}, got {_show(value)}"
        if isinstance(value, str):
            message += _suggestion(value, [c for c in bound if isinstance(c, str)])
        return [(path, message)]
    if kind == "pattern":
        hint = schema.get("x-pattern-hint") or f"text matching {bound}"
        return [(path, f"must be {hint}, got {_show(value)}")]
    if kind == "minLength":
        if bound == 1:
            return [(path, "must not be empty")]
        return [(path, f"must be at least {bound} characters long, got {len(value)}")]
    if kind == "maxLength":
        return [(path, f"must be at most {bound} characters long, got {len(value)}")]
    if kind == "minItems":
        return [(path, f"must list at least {bound} item{'s' if bound != 1 else ''}")]
    if kind == "maxItems":
        return [(path, f"must list at most {bound} items, got {len(value)}")]
    if kind == "uniqueItems":
        seen: list[Any] = []
        repeated = [item for item in value if item in seen or seen.append(item)]
        return [(path, f"must not repeat items, got {_show(repeated[0])} twice"
                 if repeated else "must not repeat items")]
    return [(path, error.message)]


def _range_text(schema: Mapping[str, Any]) -> str:
    """The allowed range of a numeric key in words, with its unit: `between 6 and 630 A`."""
    unit = schema.get("x-unit")
    unit_text = f" {unit}" if unit else ""
    low, high = schema.get("minimum"), schema.get("maximum")
    low_ex, high_ex = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if low is not None and high is not None:
        text = f"between {_show(low)} and {_show(high)}{unit_text}"
    else:
        parts = []
        if low is not None:
            parts.append(f"≥ {_show(low)}")
        if low_ex is not None:
            parts.append(f"> {_show(low_ex)}")
        if high is not None:
            parts.append(f"≤ {_show(high)}")
        if high_ex is not None:
            parts.append(f"< {_show(high_ex)}")
        text = " and ".join(parts) + unit_text
    kinds = schema.get("type")
    if isinstance(kinds, list) and "null" in kinds:
        text += " (or null)"
    return text


# ---------------------------------------------------------------------------------------------
# values a later stage parses (x-format in the schema): refused here, at check time, with the
# same rule the later stage applies, instead of failing there on every run

def format_problems(data: Any, bad_paths: set[PathParts] = frozenset()
                    ) -> list[tuple[PathParts, str]]:
    """(path, message) for every text value with an `x-format` that its later stage would
    refuse; keys that already have a problem of their own are skipped."""
    found: list[tuple[PathParts, str]] = []

    def walk(schema: Mapping[str, Any], value: Any, path: PathParts) -> None:
        if path in bad_paths:
            return
        fmt = schema.get("x-format")
        if fmt is not None and isinstance(value, str):
            message = _FORMAT_CHECKS[fmt](value)
            if message is not None:
                found.append((path, message))
        if isinstance(value, dict):
            for key, sub in schema.get("properties", {}).items():
                if key in value:
                    walk(sub, value[key], path + (key,))
        elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(value):
                walk(schema["items"], item, path + (index,))

    walk(CONFIG_SCHEMA, data, ())
    return found


def _timezone_problem(value: str) -> str | None:
    """The planner and the tariffs call `zoneinfo.ZoneInfo(value)`: it must succeed here."""
    if value == "UTC":
        return None
    try:
        zoneinfo.ZoneInfo(value)
        return None
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError, OSError, ...
        pass
    try:
        known = zoneinfo.available_timezones()
    except Exception:  # noqa: BLE001 - no time zone data at all
        known = set()
    hint = _suggestion(value, sorted(known)) if known else (
        " (this system has no time zone data: install tzdata or use 'UTC')")
    return f"must be {FORMAT_HINTS['timezone']}, got {_show(value)}{hint}"


_HOST_CHARS = re.compile(r"^[A-Za-z0-9._:%-]+$")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def _host_problem(value: str) -> str | None:
    """What the sockets get (asyncio / aiohttp / pymodbus): an IP address or a DNS name."""
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    shown = _show(value)
    if value.startswith("[") and value.endswith("]"):
        return f"must be an IPv6 address without brackets, got {shown}"
    if not _HOST_CHARS.match(value):
        return f"must be {FORMAT_HINTS['host']}, got {shown}"
    if ":" in value:
        host, _, port = value.rpartition(":")
        if port.isdigit() and host and ":" not in host:
            return (f"must be the address alone, without ':{port}' (the port has its own "
                    f"key), got {shown}")
        return f"is not a valid IPv6 address, got {shown}"
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        return f"must be {FORMAT_HINTS['host']}, got {shown}"
    if all(label.isdigit() for label in labels):
        return (f"is not a valid IPv4 address (four numbers 0..255 separated by dots), "
                f"got {shown}")
    return None


def _location_problem(value: str) -> str | None:
    """The file tariff reads `location` as a URL when it starts with http:// or https://, as
    a local file otherwise."""
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        if any(char.isspace() for char in value):
            return f"must be a URL without spaces (write %20), got {_show(value)}"
        if not parts.hostname:
            return f"must be an http(s) URL with a host name, got {_show(value)}"
        try:
            parts.port  # noqa: B018 - raises for a port that is not 0..65535
        except ValueError:
            return f"has an invalid port in the URL, got {_show(value)}"
        return None
    if value.startswith("/"):
        return None
    return f"must be {FORMAT_HINTS['location']}, got {_show(value)}"


def _password_hash_problem(value: str) -> str | None:
    """The web UI checks the hash with `phaeton.web.passwords.check_hash_format` and turns
    writes off when it is unusable."""
    from phaeton.web.passwords import PasswordHashError, check_hash_format

    try:
        check_hash_format(value)
    except PasswordHashError as exc:
        return (f"is not usable ({exc}): set the password again from the web UI or with "
                f"`python -m phaeton.web.set_password`, or set null for no password")
    return None


_FORMAT_CHECKS = {
    "timezone": _timezone_problem,
    "host": _host_problem,
    "location": _location_problem,
    "password-hash": _password_hash_problem,
}
assert set(_FORMAT_CHECKS) == set(FORMAT_HINTS)


def _schema_at(path: PathParts) -> Mapping[str, Any]:
    """The schema of the key at `path` ({} when the path leaves the schema)."""
    schema: Mapping[str, Any] = CONFIG_SCHEMA
    for part in path:
        if isinstance(part, int) and "items" in schema:
            schema = schema["items"]
        elif isinstance(part, str) and part in schema.get("properties", {}):
            schema = schema["properties"][part]
        else:
            return {}
    return schema


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def cross_field_problems(data: Mapping[str, Any],
                         bad_paths: set[PathParts] = frozenset()) -> list[tuple[PathParts, str]]:
    """Rules that compare keys with each other, on defaulted data.

    A rule is skipped when one of its keys already has a problem of its own (`bad_paths`) or
    is of the wrong type, so each mistake is reported once.
    """
    def get(path: PathParts) -> Any:
        value: Any = data
        for part in path:
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            elif isinstance(value, list) and isinstance(part, int) and part < len(value):
                value = value[part]
            else:
                return None
        return value

    def usable(*paths: PathParts) -> bool:
        return all(not any(p[:n] in bad_paths for n in range(len(p) + 1)) for p in paths)

    found: list[tuple[PathParts, str]] = []
    entries = get(("chargers",))
    several = isinstance(entries, list) and len(entries) > 0
    bases: list[PathParts] = ([("chargers", index) for index in range(len(entries))]
                              if several else [("charger",)])
    for base in bases:
        found.extend(_charger_problems(base, get, usable))
    if several:
        found.extend(layout_problems(data, bad_paths))
    first = bases[0]
    min_a, max_a = first + ("min_current_a",), first + ("max_current_a",)
    currents_ok = (usable(min_a, max_a) and _is_number(get(min_a)) and _is_number(get(max_a))
                   and get(min_a) <= get(max_a))
    tick, stale = ("control", "tick_s"), ("control", "stale_after_s")
    if usable(tick, stale) and _is_number(get(tick)) and _is_number(get(stale)) \
            and get(stale) <= get(tick):
        found.append((stale, f"must be longer than control.tick_s ({_show(get(tick))}), "
                             f"got {_show(get(stale))}"))
    windows = get(("schedule", "windows"))
    if isinstance(windows, list):
        for index, window in enumerate(windows):
            base = ("schedule", "windows", index)
            if not isinstance(window, Mapping):
                continue
            start, end = window.get("start"), window.get("end")
            if usable(base + ("start",), base + ("end",)) and isinstance(start, str) \
                    and start == end:
                found.append((base + ("end",), f"must differ from start ({start}): an empty "
                                               f"window never charges"))
            current = window.get("current_a")
            if currents_ok and usable(base + ("current_a",)) and _is_number(current) \
                    and not get(min_a) <= current <= get(max_a):
                found.append((base + ("current_a",),
                              f"must be null or between {format_key_path(first)}.min_current_a "
                              f"({_show(get(min_a))}) and {format_key_path(first)}.max_current_a "
                              f"({_show(get(max_a))}), got {_show(current)}"))
    tariff = ("planner", "tariff")
    kind = get(tariff + ("type",))
    needed = TARIFF_KINDS[kind].required if isinstance(kind, str) and kind in TARIFF_KINDS \
        else {}
    if needed and isinstance(get(tariff + (kind,)), Mapping):
        for name, what in needed.items():
            key = tariff + (kind, name)
            if usable(key) and get(key) is None:
                found.append((key, f"is required when planner.tariff.type is {kind!r}: "
                                   f"{what}"))
    base, longest = tariff + ("refresh", "backoff_base_s"), tariff + ("refresh", "backoff_max_s")
    if usable(base, longest) and _is_number(get(base)) and _is_number(get(longest)) \
            and get(longest) < get(base):
        found.append((longest, f"must be at least planner.tariff.refresh.backoff_base_s "
                               f"({_show(get(base))} s), got {_show(get(longest))}"))
    warning, critical = ("carbon", "budget", "warning_pct"), ("carbon", "budget", "critical_pct")
    if usable(warning, critical) and _is_number(get(warning)) and _is_number(get(critical)) \
            and get(warning) >= get(critical):
        found.append((warning, f"must be below carbon.budget.critical_pct "
                               f"({_show(get(critical))} %): a warning at or above the "
                               f"critical level is never seen, got {_show(get(warning))}"))
    found.extend(_fleet_problems(get, usable))
    found.extend(vehicle_problems(get, usable))
    web_port = ("web", "port")
    for base in bases:
        ocpp_port = base + ("ocpp", "port")
        if get(base + ("protocol",)) == "ocpp" and get(("web", "enabled")) is True \
                and usable(ocpp_port, web_port) and get(ocpp_port) == get(web_port) \
                and _hosts_overlap(get(base + ("ocpp", "host")), get(("web", "host"))):
            found.append((ocpp_port, f"clashes with web.port ({get(web_port)}): the OCPP "
                                     f"server and the web server cannot listen on the same "
                                     f"port"))
    return found


def _fleet_problems(get, usable) -> list[tuple[PathParts, str]]:
    """A fleet that is on needs its id and key; a client certificate needs its key."""
    found: list[tuple[PathParts, str]] = []
    if get(("fleet", "enabled")) is not True:
        return found
    for name, what in (("site_id", "the site's id in the fleet's topics"),
                       ("hmac_key", "the key the operator signs this site's schedules with")):
        key = ("fleet", name)
        if usable(key) and get(key) is None:
            found.append((key, f"is required when fleet.enabled is true: {what}"))
    cert, private = ("fleet", "broker", "tls", "cert_file"), ("fleet", "broker", "tls", "key_file")
    if usable(cert, private) and get(cert) is not None and get(private) is None:
        found.append((private, "is required with fleet.broker.tls.cert_file: the client "
                               "certificate's private key"))
    return found


def _charger_problems(base: PathParts, get, usable) -> list[tuple[PathParts, str]]:
    """One charger's rules between its keys (`base`: charger, or chargers[i])."""
    found: list[tuple[PathParts, str]] = []
    name = format_key_path(base)
    min_a, max_a = base + ("min_current_a",), base + ("max_current_a",)
    currents_ok = usable(min_a, max_a) and _is_number(get(min_a)) and _is_number(get(max_a))
    if currents_ok and get(min_a) > get(max_a):
        found.append((min_a, f"must be ≤ {name}.max_current_a ({_show(get(max_a))}), "
                             f"got {_show(get(min_a))}"))
        currents_ok = False
    charger_phases, site_phases = base + ("phases",), ("site", "phases")
    if usable(charger_phases, site_phases) and _is_number(get(charger_phases)) \
            and _is_number(get(site_phases)) and get(charger_phases) > get(site_phases):
        found.append((charger_phases, f"must be ≤ site.phases ({get(site_phases)}): the grid "
                                      f"connection has only {get(site_phases)} phase(s)"))
    safe = base + ("safe_current_a",)
    if currents_ok and usable(safe) and _is_number(get(safe)):
        if get(safe) != 0 and not get(min_a) <= get(safe) <= get(max_a):
            found.append((safe, f"must be 0 (stop) or between {name}.min_current_a "
                                f"({_show(get(min_a))}) and {name}.max_current_a "
                                f"({_show(get(max_a))}), got {_show(get(safe))}"))
    return found


def _hosts_overlap(host_a: Any, host_b: Any) -> bool:
    wildcard = {"0.0.0.0", "::", "*", ""}
    return host_a == host_b or host_a in wildcard or host_b in wildcard


def _suggestion(word: str, candidates: Any) -> str:
    """` (did you mean 'x'?)` for a near miss among `candidates`, else ``."""
    names = [str(c) for c in candidates]
    by_lower = {name.lower(): name for name in names}
    if word.lower() in by_lower and by_lower[word.lower()] != word:
        return f" (did you mean {by_lower[word.lower()]!r}?)"
    import difflib      # only a config with a mistake gets here
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: Any, limit: int = 60) -> str:
    """A value as a YAML user would write it, shortened to about `limit` characters."""
    text = _as_yaml(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _as_yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return str(value)


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# writing

_SAVED_HEADER = (
    "# phaeton configuration, written whole by phaeton: the previous version of this file, with\n"
    "# its comments, is in {backup}. The documented sample is config.yaml in phaeton's sources.\n"
)

CHANGED_MESSAGE = ("the config file changed since it was read (edited by hand, or saved from "
                   "another page); nothing was saved: reload to see the file as it is now, then "
                   "make the change again")


class ConfigChanged(ConfigError):
    """The file is not the version the caller read (`save_config(..., expected_version=)`)."""

    def __init__(self, source: str = "<config>"):
        super().__init__([ConfigProblem("", None, CHANGED_MESSAGE)], source)


def config_version(content: bytes | None) -> str:
    """The version token of a config file's bytes (None: no file): a hash of the content."""
    if content is None:
        return "none"
    import hashlib      # the web UI's config editor, not the service's start
    return hashlib.sha256(content).hexdigest()[:32]


def config_file_version(path: str | os.PathLike) -> str:
    """The version token of the file at `path` as it is now (`"none"` when it does not exist)."""
    try:
        return config_version(Path(path).read_bytes())
    except FileNotFoundError:
        return config_version(None)


def save_config(path: str | os.PathLike, data: Mapping[str, Any], *,
                expected_version: str | None = None) -> Config:
    """Validate `data` and write it to the YAML file at `path`, atomically; returns the new
    `Config`.

    The save starts from the file as it is now and changes only what `data` means differently
    (`phaeton.config_merge`), editing the text in place (`phaeton.yaml_edit`): comments, key
    order and every unchanged key stay as written. Only when the file cannot be edited so (not
    YAML, not a mapping, aliases) is it written whole, with a header saying so. Keys `data`
    leaves out follow the defaults. With `expected_version` (from `config_file_version`) the
    save is refused with `ConfigChanged` when the file is no longer that version.

    The previous file is first copied to `<path>.bak`. Both writes go through a temp file,
    fsync and rename, so `path` is always either the old or the new complete file. Raises
    `ConfigError` (nothing written) when `data` is invalid, `OSError` when the directory is not
    writable.
    """
    plain = config_to_dict(data)
    source = str(path)
    problems = validate_config_data(plain)
    if problems:
        raise ConfigError(problems, source)
    target = Path(path)
    backup = target.with_name(target.name + ".bak")
    try:
        previous = target.read_bytes()
    except FileNotFoundError:
        previous = None
    if expected_version is not None and config_version(previous) != expected_version:
        raise ConfigChanged(source)
    config = Config(apply_defaults(plain))
    text = _edited_file(previous, plain, source, config)
    if text is None:
        text = _SAVED_HEADER.format(backup=backup.name) + yaml.safe_dump(
            plain, sort_keys=False, allow_unicode=True, default_flow_style=False)
        config = parse_config_text(text, source)  # what we write must load back identically
    if previous is not None:
        write_file_atomically(backup, previous)
    write_file_atomically(target, text.encode("utf-8"))
    return config


def _edited_file(previous: bytes | None, plain: dict[str, Any], source: str,
                 expected: Config) -> str | None:
    """The previous file's text (none: an empty one) edited to mean `plain`, or None when that
    cannot be done (the caller then writes the file whole). The result is loaded back and must
    equal `expected`."""
    try:
        old_text = previous.decode("utf-8") if previous is not None else ""
        node = yaml.compose(old_text, Loader=yaml.SafeLoader)
        if _oversized_part(node) is not None:
            return None
        old = yaml.SafeLoader("").construct_document(node) if node is not None else {}
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return None
    old = {} if old is None else old
    if not isinstance(old, dict):
        return None
    from phaeton.yaml_edit import edit_yaml     # saving, never at the service's start
    wanted = merge_onto(old, plain, apply_defaults(old), apply_defaults(plain))
    text = edit_yaml(old_text, wanted)
    if text is None:
        return None
    try:
        return text if parse_config_text(text, source) == expected else None
    except ConfigError:
        return None
