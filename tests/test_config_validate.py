"""phaeton's own schema checker against jsonschema (the reference implementation of Draft
2020-12) on generated configs: both must find the same failing keywords at the same places,
so `check-config` and the service's start-up keep reporting exactly what they reported when
jsonschema did the checking."""
from __future__ import annotations

import copy

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phaeton.config import apply_defaults, validate_config_data
from phaeton.config_schema import CONFIG_SCHEMA
from phaeton.config_validate import UnsupportedSchema, Validator

REFERENCE = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
OURS = Validator(CONFIG_SCHEMA)
BASE = apply_defaults({"charger": {"protocol": "alfen", "alfen": {"host": "192.168.1.20"}}})


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, path + (index,))


PATHS = [p for p in _paths(BASE) if p]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12), st.sampled_from(["alfen", "ocpp", "22:00", "25:61", "", "x" * 300,
                                           "Europe/Amsterdam", "info", "DEBUG", 1.0, 0.0, -0.5]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


@st.composite
def mutated_configs(draw):
    config = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS))
        parent = config
        try:
            for key in path[:-1]:
                parent = parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(parent, (dict, list)):
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        try:
            if action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif action == "add" and isinstance(parent, dict):
                parent[draw(st.text(max_size=8))] = draw(values)
            else:
                parent[path[-1]] = draw(values)
        except (IndexError, TypeError):
            continue
    return config


def _found(validator, instance):
    return sorted((tuple(map(str, e.absolute_path)), e.validator, repr(e.instance))
                  for e in validator.iter_errors(instance))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_configs())
def test_same_errors_as_jsonschema_on_generated_configs(config):
    assert _found(OURS, config) == _found(REFERENCE, config)


@pytest.mark.parametrize("instance", [
    {"charger": {"protocol": "ocpp"}},                          # if/then: ocpp section required
    {"charger": {"protocol": "ocpp", "ocpp": {}}},               # nested required
    {"control": {"tick_s": 1.0e-09}},                           # minimum
    {"control": {"tick_s": True}},                              # a bool is not a number
    {"device": {"instance": 40.0}},                             # 40.0 is an integer in 2020-12
    {"charger": {"protocol": "alfen", "alfen": {"host": "h", "port": "502"}}},
    {"logging": {"level": "loud"}},                             # enum
    {"surprise": 1},                                            # additionalProperties
    [],                                                         # not a mapping
])
def test_same_errors_as_jsonschema_on_known_cases(instance):
    full = apply_defaults(instance) if isinstance(instance, dict) else instance
    assert _found(OURS, full) == _found(REFERENCE, full)


def test_a_schema_keyword_the_checker_does_not_know_is_refused_not_ignored():
    with pytest.raises(UnsupportedSchema, match="oneOf"):
        Validator({"properties": {"a": {"oneOf": [{"type": "string"}]}}})


def test_the_user_still_gets_the_same_plain_messages():
    problems = validate_config_data({"charger": {"protocol": "alfen", "alfen": {"host": "h"}},
                                     "control": {"tick_s": 1.0e-09},
                                     "logging": {"level": "loud"}, "surprise": 1})
    messages = {p.key_path: p.message for p in problems}
    assert messages["control.tick_s"].startswith("must be between 0.25 and 60")
    assert messages["logging.level"].startswith("must be one of")
    assert messages["surprise"].startswith("unknown key")
