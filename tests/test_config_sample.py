"""The documented sample config.yaml matches the schema: same keys, same defaults, comments."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from phaeton.config import load_config
from phaeton.config_schema import CONFIG_SCHEMA

SAMPLE = Path(__file__).resolve().parent.parent / "config.yaml"


def _leaf_keys(schema, path=()):
    for key, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object":
            yield from _leaf_keys(sub, path + (key,))
        else:
            yield path + (key,), sub


def _lookup(data, path):
    for key in path:
        assert isinstance(data, dict) and key in data, f"{'.'.join(path)} missing in config.yaml"
        data = data[key]
    return data


def test_sample_validates_with_the_example_charger_address():
    config = load_config(SAMPLE)
    assert config.charger.protocol == "alfen"
    assert config.charger.alfen.host == "192.168.1.50"


def test_every_schema_key_is_in_the_sample_with_the_schema_default():
    sample = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    checked = 0
    for path, sub in _leaf_keys(CONFIG_SCHEMA):
        value = _lookup(sample, path)
        if "default" in sub:
            assert value == sub["default"], f"{'.'.join(path)}: sample {value!r} != default " \
                                            f"{sub['default']!r}"
        checked += 1
    assert checked > 50


def test_every_schedule_window_key_is_shown_in_the_sample():
    window_keys = CONFIG_SCHEMA["properties"]["schedule"]["properties"]["windows"]["items"]
    sample = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    assert set(sample["schedule"]["windows"][0]) == set(window_keys["properties"])


def test_every_key_line_has_a_comment_naming_its_unit():
    node = yaml.compose(SAMPLE.read_text(encoding="utf-8"))
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()

    def walk(mapping, schema, path=()):
        for key_node, value_node in mapping.value:
            sub = schema["properties"][key_node.value]
            line = lines[key_node.start_mark.line]
            assert "#" in line, f"line {key_node.start_mark.line + 1} ({line.strip()}) " \
                                f"has no comment"
            comment = line.split("#", 1)[1]
            unit = sub.get("x-unit")
            if unit:
                token = "kWh" if unit == "currency/kWh" else unit
                dotted = ".".join(path + (key_node.value,))
                assert re.search(rf"\((?:[^)]*\s)?{re.escape(token)}[\s,;)]", comment), \
                    f"{dotted}: comment does not name the unit {unit}"
            if isinstance(value_node, yaml.MappingNode) and sub.get("type") == "object":
                walk(value_node, sub, path + (key_node.value,))

    walk(node, CONFIG_SCHEMA)
