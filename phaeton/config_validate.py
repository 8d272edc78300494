"""A small JSON Schema checker for the keywords `config_schema.CONFIG_SCHEMA` uses.

The service checks its config at every start; the `jsonschema` package costs about 3 MB of
memory and 60 ms of import time on this machine (much more on a Cerbo GX) for what is a walk
over one nested mapping. This module understands exactly the Draft 2020-12 keywords the
schema uses and refuses a schema with any other keyword, so a keyword added to the schema
later cannot be silently ignored:

  type, properties, additionalProperties (false or a schema), required, enum, const,
  minimum, maximum, exclusiveMinimum, exclusiveMaximum, pattern, minLength, maxLength,
  items, minItems, maxItems, uniqueItems, allOf, if/then/else;
  annotations: description, default, title, $schema, $id and every `x-` key.

`iter_errors(instance)` yields `SchemaError`s with the attributes `config._explain` reads
(the names jsonschema uses). tests/test_config_validate.py checks it against jsonschema on
thousands of generated configs.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_ANNOTATIONS = {"description", "default", "title", "$schema", "$id"}
_CHECKED = {"type", "properties", "additionalProperties", "required", "enum", "const",
            "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern",
            "minLength", "maxLength", "items", "minItems", "maxItems", "uniqueItems", "allOf",
            "if", "then", "else"}


class UnsupportedSchema(ValueError):
    """The schema uses a keyword this checker does not implement."""


@dataclass
class SchemaError:
    """One failed keyword: where (`absolute_path`), which keyword (`validator`) with its
    value (`validator_value`), the schema holding it and the value that failed it."""

    absolute_path: tuple
    validator: str
    validator_value: Any
    instance: Any
    schema: Mapping[str, Any]
    message: str


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "number":
        return isinstance(value, (int, float))
    if kind == "integer":    # 2020-12: a float with no fraction is an integer too
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    raise UnsupportedSchema(f"unknown type {kind!r}")


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, containers compare item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Validator:
    """`Validator(schema).iter_errors(instance)`; the schema is checked for unknown
    keywords when the validator is made."""

    def __init__(self, schema: Mapping[str, Any]):
        self.schema = schema
        self._patterns: dict[str, re.Pattern] = {}
        self._check_keywords(schema, "#")

    def _check_keywords(self, schema: Any, where: str) -> None:
        if not isinstance(schema, Mapping):
            raise UnsupportedSchema(f"{where}: a schema must be a mapping")
        for key, value in schema.items():
            if key in _ANNOTATIONS or key.startswith("x-"):
                continue
            if key not in _CHECKED:
                raise UnsupportedSchema(f"{where}: keyword {key!r} is not supported")
            if key == "properties":
                for name, sub in value.items():
                    self._check_keywords(sub, f"{where}/properties/{name}")
            elif key in ("items", "if", "then", "else") or (
                    key == "additionalProperties" and value is not False):
                self._check_keywords(value, f"{where}/{key}")
            elif key == "allOf":
                for index, sub in enumerate(value):
                    self._check_keywords(sub, f"{where}/allOf/{index}")
            elif key == "pattern":
                self._patterns[value] = re.compile(value)

    def is_valid(self, instance: Any) -> bool:
        return next(self.iter_errors(instance), None) is None

    def iter_errors(self, instance: Any) -> Iterator[SchemaError]:
        yield from self._errors(instance, self.schema, ())

    def _errors(self, value: Any, schema: Mapping[str, Any], path: tuple
                ) -> Iterator[SchemaError]:
        def error(keyword: str, message: str) -> SchemaError:
            return SchemaError(path, keyword, schema[keyword], value, schema, message)

        for keyword, bound in schema.items():
            if keyword == "type":
                kinds = bound if isinstance(bound, list) else [bound]
                if not any(_is_type(value, kind) for kind in kinds):
                    yield error(keyword, f"{value!r} is not of type {bound!r}")
            elif keyword == "enum":
                if not any(_equal(value, choice) for choice in bound):
                    yield error(keyword, f"{value!r} is not one of {bound!r}")
            elif keyword == "const":
                if not _equal(value, bound):
                    yield error(keyword, f"{bound!r} was expected")
            elif keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if _number(value) and not {
                        "minimum": value >= bound, "maximum": value <= bound,
                        "exclusiveMinimum": value > bound,
                        "exclusiveMaximum": value < bound}[keyword]:
                    yield error(keyword, f"{value!r} fails {keyword} {bound!r}")
            elif keyword == "pattern":
                if isinstance(value, str) and not self._patterns[bound].search(value):
                    yield error(keyword, f"{value!r} does not match {bound!r}")
            elif keyword == "minLength":
                if isinstance(value, str) and len(value) < bound:
                    yield error(keyword, f"{value!r} is too short")
            elif keyword == "maxLength":
                if isinstance(value, str) and len(value) > bound:
                    yield error(keyword, f"{value!r} is too long")
            elif isinstance(value, list) and keyword in ("items", "minItems", "maxItems",
                                                         "uniqueItems"):
                yield from self._array_errors(value, schema, keyword, bound, path, error)
            elif isinstance(value, Mapping) and keyword in ("properties",
                                                            "additionalProperties",
                                                            "required"):
                yield from self._object_errors(value, schema, keyword, bound, path, error)
            elif keyword == "allOf":
                for sub in bound:
                    yield from self._errors(value, sub, path)
            elif keyword == "if":
                branch = "then" if next(self._errors(value, bound, path), None) is None \
                    else "else"
                if branch in schema:
                    yield from self._errors(value, schema[branch], path)

    def _array_errors(self, value, schema, keyword, bound, path, error):
        if keyword == "items":
            for index, item in enumerate(value):
                yield from self._errors(item, bound, path + (index,))
        elif keyword == "minItems" and len(value) < bound:
            yield error(keyword, f"{value!r} should be non-empty" if bound == 1
                        else f"{value!r} is too short")
        elif keyword == "maxItems" and len(value) > bound:
            yield error(keyword, f"{value!r} is too long")
        elif keyword == "uniqueItems" and bound and any(
                _equal(a, b) for i, a in enumerate(value) for b in value[i + 1:]):
            yield error(keyword, f"{value!r} has non-unique elements")

    def _object_errors(self, value, schema, keyword, bound, path, error):
        if keyword == "properties":
            for name, sub in bound.items():
                if name in value:
                    yield from self._errors(value[name], sub, path + (name,))
        elif keyword == "additionalProperties":
            known = schema.get("properties", {})
            extra = [key for key in value if key not in known]
            if bound is False:
                if extra:
                    yield error(keyword, "Additional properties are not allowed "
                                f"({', '.join(map(repr, extra))} unexpected)")
            else:
                for key in extra:
                    yield from self._errors(value[key], bound, path + (key,))
        elif keyword == "required":
            missing = [key for key in bound if key not in value]
            if missing:
                # jsonschema reports each missing key as its own error; so do we
                for key in missing:
                    yield error(keyword, f"{key!r} is a required property")
