"""The in-place YAML editor: whatever it writes loads as the data asked for, and it leaves the
lines it had no reason to touch alone."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phaeton.yaml_edit import edit_yaml, same

SAMPLE = (Path(__file__).parent.parent / "config.yaml").read_text(encoding="utf-8")
SAMPLE_DATA = yaml.safe_load(SAMPLE)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["22:00", "06:00", "0", "yes", "off", "null", "~", "", " lead", "a: b",
                     "# not a comment", "x #y", "'quoted'", '"dq"', "[1]", "{a}", "-", "@at",
                     "ünïcödé", "tab\there", "two\nlines", "€0.30"]),
    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "c"]), inner,
                                                 max_size=3)), max_leaves=6)


def _paths(data, prefix=()):
    """Every (path, value) in nested dicts and lists."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield prefix + (key,), value
            yield from _paths(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield prefix + (index,), value
            yield from _paths(value, prefix + (index,))


ALL_PATHS = [path for path, _ in _paths(SAMPLE_DATA)]
MAPPING_PATHS = [()] + [path for path, value in _paths(SAMPLE_DATA) if isinstance(value, dict)]


def _at(data, path):
    for part in path:
        data = data[part]
    return data


@st.composite
def changed_configs(draw):
    data = copy.deepcopy(SAMPLE_DATA)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if action == "add":
            try:
                parent = _at(data, draw(st.sampled_from(MAPPING_PATHS)))
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed it
            if isinstance(parent, dict):
                parent[draw(st.sampled_from(["new_key", "another", "z"]))] = draw(values)
            continue
        path = draw(st.sampled_from(ALL_PATHS))
        try:
            parent = _at(data, path[:-1])
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
        if action == "set":
            parent[path[-1]] = draw(values)
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changed_configs())
def test_an_edited_file_loads_as_the_data_asked_for(target):
    text = edit_yaml(SAMPLE, target)
    if text is not None:
        assert same(yaml.safe_load(text), target), text


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([p for p, v in _paths(SAMPLE_DATA) if not isinstance(v, (dict, list))]),
       st.one_of(st.integers(0, 999), st.sampled_from(["23:30", "EUR", "a b", "x: y", "#"])))
def test_changing_one_value_changes_one_line_and_keeps_every_comment(path, value):
    target = copy.deepcopy(SAMPLE_DATA)
    _at(target, path[:-1])[path[-1]] = value
    text = edit_yaml(SAMPLE, target)
    assert text is not None
    assert same(yaml.safe_load(text), target)
    before, after = SAMPLE.splitlines(), text.splitlines()
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(changed) <= 1
    for old, new in changed:  # the comment of the line is still there, in its column
        if " # " in old:
            assert new.index(" # ") == old.index(" # ") or new.index("# ") > old.index("# ")
            assert new[new.index("# "):] == old[old.index("# "):]


def test_text_without_a_document_keeps_its_comments():
    assert edit_yaml("# nothing yet\n", {"site": {"fuse_a": 30}}) == (
        "# nothing yet\nsite:\n  fuse_a: 30\n")
    assert edit_yaml("", {}) == ""


def test_shapes_it_does_not_handle_are_left_to_the_caller():
    assert edit_yaml("a: &x 1\nb: *x\n", {"a": 2, "b": 1}) is None  # an alias
    assert edit_yaml("[1, 2]\n", {"a": 1}) is None  # not a mapping
    assert edit_yaml("a: [1\n", {"a": 1}) is None  # not YAML
    assert edit_yaml("a: 1\na: 2\n", {"a": 3}) is None  # a key twice


def test_windows_line_endings_stay():
    text = edit_yaml("a: 1   # one\r\nb:\r\n  c: 2\r\n", {"a": 5, "b": {"c": 2, "d": 3}})
    assert text == "a: 5   # one\r\nb:\r\n  c: 2\r\n  d: 3\r\n"
