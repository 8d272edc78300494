"""Config loading and validation: what a user sees for a good file and for every kind of mistake."""
from __future__ import annotations

import textwrap

import jsonschema
import pytest

from phaeton.config import (
    Config,
    ConfigError,
    ConfigProblem,
    ConfigUnreadable,
    apply_defaults,
    config_to_dict,
    default_config,
    load_config,
    parse_config_text,
    validate_config_data,
)
from phaeton.config_schema import CONFIG_SCHEMA

MINIMAL = "charger:\n  alfen:\n    host: 192.168.1.50\n"


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path, text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


def only_problem(tmp_path, text: str) -> ConfigProblem:
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    return problems[0]


# -- the schema itself ---------------------------------------------------------------------------

def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(CONFIG_SCHEMA)
    assert CONFIG_SCHEMA["$schema"].endswith("2020-12/schema")


def _leaf_keys(schema, path=()):
    for key, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object":
            yield from _leaf_keys(sub, path + (key,))
        else:
            yield path + (key,), sub


def test_every_key_has_description_type_and_default_except_the_charger_address():
    without_default = []
    for path, sub in _leaf_keys(CONFIG_SCHEMA):
        assert sub.get("description"), path
        assert "type" in sub, path
        if "default" not in sub:
            without_default.append(".".join(path))
        else:
            jsonschema.validate(sub["default"], sub)  # each default obeys its own rule
    assert sorted(without_default) == ["charger.alfen.host", "charger.ocpp.charge_point_id"]


def test_every_numeric_key_is_bounded_and_every_section_rejects_unknown_keys():
    def sections(schema, path=()):
        if schema.get("type") == "object":
            yield path, schema
            for key, sub in schema.get("properties", {}).items():
                yield from sections(sub, path + (key,))
        elif schema.get("type") == "array" and "items" in schema:
            yield from sections(schema["items"], path + ("[]",))

    for path, section in sections(CONFIG_SCHEMA):
        assert section.get("additionalProperties") is False, path
        for key, sub in section["properties"].items():
            kinds = sub["type"] if isinstance(sub["type"], list) else [sub["type"]]
            if {"integer", "number"} & set(kinds):
                bounded_low = "enum" in sub or "minimum" in sub or "exclusiveMinimum" in sub
                bounded_high = "enum" in sub or "maximum" in sub
                assert bounded_low and bounded_high, path + (key,)


# -- good files ----------------------------------------------------------------------------------

def test_minimal_file_gets_every_default_and_reads_as_attributes_or_items(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.charger.alfen.host == "192.168.1.50"
    assert config["charger"]["alfen"]["port"] == 502
    assert config.site.fuse_a == 25 and config.site.phases == 3
    assert config.control.auto.disable_delay_s == 180
    assert config.control.phase_switching.enabled is True
    assert config.schedule.windows[0].start == "22:00"
    assert config.schedule.windows[0].days == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    assert config.device.unique_id == "0"
    assert config.web.password_hash is None
    assert config.charger.ocpp.password is None


def test_config_is_immutable_and_unknown_attribute_suggests_the_key(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(AttributeError, match="read-only"):
        config.data_dir = "/tmp"
    with pytest.raises(TypeError):
        config["site"]["fuse_a"] = 40  # type: ignore[index]
    with pytest.raises(AttributeError, match="did you mean 'max_current_a'"):
        config.charger.max_curent_a  # noqa: B018


def test_config_survives_copy_deepcopy_and_pickle(tmp_path):
    import copy
    import pickle

    config = load_config(write(tmp_path, MINIMAL))
    assert copy.copy(config) is config
    for clone in (copy.deepcopy(config), pickle.loads(pickle.dumps(config))):
        assert isinstance(clone, Config) and clone == config
        assert clone.schedule.windows[0].end == "06:00"


def test_config_to_dict_gives_plain_mutable_copies(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    plain = config_to_dict(config)
    assert type(plain) is dict and type(plain["schedule"]["windows"]) is list
    plain["site"]["fuse_a"] = 63
    assert config.site.fuse_a == 25
    assert load_config(write(tmp_path, MINIMAL)).to_dict() == config_to_dict(config)


def test_user_values_win_over_defaults_and_schedule_window_days_default_to_all(tmp_path):
    config = load_config(write(tmp_path, """
        site: {fuse_a: 35.5, phases: 3}
        charger:
          protocol: ocpp
          max_current_a: 32
          ocpp: {charge_point_id: garage-1, password: s3cret}
        schedule:
          windows:
            - {start: "01:00", end: "05:30", current_a: 10}
            - {days: [sat, sun], start: "12:00", end: "14:00"}
        """))
    assert config.site.fuse_a == 35.5
    assert config.charger.ocpp.charge_point_id == "garage-1"
    assert config.charger.ocpp.port == 8887
    assert "host" not in config.charger.alfen  # no default for the address
    first, second = config.schedule.windows
    assert first.days == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    assert first.current_a == 10 and second.current_a is None
    assert second.days == ("sat", "sun")


def test_section_left_empty_means_its_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + "site:\n  # fuse_a: 35\ncontrol:\n"))
    assert config.site.fuse_a == 25 and config.control.tick_s == 2


def test_empty_file_means_defaults_but_the_charger_address_is_then_missing(tmp_path):
    problem = only_problem(tmp_path, "")
    assert problem.key_path == "charger.alfen.host"
    assert problem.line == 1
    assert problem.message == "is required when charger.protocol is 'alfen'"


def test_default_config_has_every_defaulted_key():
    defaults = default_config()
    assert defaults["charger"]["alfen"] == {"port": 502, "station_unit_id": 200,
                                            "socket_unit_id": 1, "timeout_s": 3,
                                            "setpoint_refresh_s": 20, "reconnect_max_s": 5}
    assert defaults["session"] == {"price_per_kwh": 0.30, "currency": "EUR",
                                   "history_limit": 1000}


# -- one problem of each kind, with its key path, line and message ------------------------------

def test_out_of_range_names_key_line_and_bound(tmp_path):
    problem = only_problem(tmp_path, """
        charger:
          alfen:
            host: 10.0.0.2
          max_current_a: 100
        """)
    assert (problem.key_path, problem.line, problem.message) == (
        "charger.max_current_a", 5, "must be between 6 and 80 A, got 100")


def test_below_minimum_and_exclusive_minimum(tmp_path):
    problems = problems_of(tmp_path, MINIMAL + "control:\n  tick_s: 0\n  stale_after_s: 0.5\n")
    assert [(p.key_path, p.line, p.message) for p in problems] == [
        ("control.tick_s", 5, "must be between 0.25 and 60 s, got 0"),
        ("control.stale_after_s", 6, "must be between 1 and 3600 s, got 0.5"),
    ]


def test_wrong_type_says_what_was_expected_and_what_was_found(tmp_path):
    problems = problems_of(tmp_path, MINIMAL + textwrap.dedent("""\
        site:
          fuse_a: twenty
          consumption_includes_ev: "yes"
        web: [8088]
        """))
    assert [(p.key_path, p.line, p.message) for p in problems] == [
        ("site.fuse_a", 5, "must be a number, got 'twenty' (text)"),
        ("site.consumption_includes_ev", 6, "must be true or false, got 'yes' (text)"),
        ("web", 7, "must be a mapping of keys, got [8088] (a list)"),
    ]


def test_boolean_is_not_accepted_as_a_number(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "  max_current_a: true\n")
    assert problem.key_path == "charger.max_current_a"
    assert problem.message == "must be a number, got true (a boolean)"


def test_number_where_text_is_expected_says_to_quote_it(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "device:\n  unique_id: 7\n")
    assert (problem.key_path, problem.line) == ("device.unique_id", 5)
    assert problem.message == 'must be text, got 7 (a whole number): write "7" in quotes'


def test_unquoted_time_is_explained(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "schedule:\n  windows:\n"
                                               "    - {start: 22:00, end: \"06:00\"}\n")
    assert (problem.key_path, problem.line) == ("schedule.windows[0].start", 6)
    assert 'in quotes like "22:00"' in problem.message and "1320" in problem.message


def test_bad_time_day_and_repeated_day(tmp_path):
    problems = problems_of(tmp_path, MINIMAL + textwrap.dedent("""\
        schedule:
          windows:
            - days: [mon, monday]
              start: "24:00"
              end: "6:00"
            - days: [sat, sat]
              start: "08:00"
              end: "09:00"
        """))
    assert [(p.key_path, p.line, p.message) for p in problems] == [
        ("schedule.windows[0].days[1]", 6, "must be one of 'mon', 'tue', 'wed', 'thu', 'fri', "
                                           "'sat', 'sun', got 'monday' (did you mean 'mon'?)"),
        ("schedule.windows[0].start", 7, "must be a time \"HH:MM\" from 00:00 to 23:59, "
                                         "got '24:00'"),
        ("schedule.windows[0].end", 8, "must be a time \"HH:MM\" from 00:00 to 23:59, "
                                       "got '6:00'"),
        ("schedule.windows[1].days", 9, "must not repeat items, got 'sat' twice"),
    ]


def test_window_without_start_points_at_the_window(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "schedule:\n  windows:\n    - end: \"06:00\"\n")
    assert (problem.key_path, problem.line, problem.message) == (
        "schedule.windows[0].start", 6, "is required")


def test_unknown_key_with_suggestion_at_its_own_line(tmp_path):
    problems = problems_of(tmp_path, MINIMAL + "  max_curent_a: 16\ncontrol:\n  tik_s: 2\n"
                                               "colour: blue\n")
    assert [(p.key_path, p.line, p.message) for p in problems] == [
        ("charger.max_curent_a", 4, "unknown key 'max_curent_a' (did you mean 'max_current_a'?)"),
        ("control.tik_s", 6, "unknown key 'tik_s' (did you mean 'tick_s'?)"),
        ("colour", 7, "unknown key 'colour'"),
    ]


def test_enum_suggests_the_right_case(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "logging:\n  level: debug\n")
    assert problem.key_path == "logging.level"
    assert problem.message.endswith("got 'debug' (did you mean 'DEBUG'?)")


def test_phases_must_be_one_or_three(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "site:\n  phases: 2\n")
    assert (problem.key_path, problem.line, problem.message) == (
        "site.phases", 5, "must be one of 1, 3, got 2")


def test_missing_required_key_gives_line_of_parent_mapping(tmp_path):
    problem = only_problem(tmp_path, """
        site:
          fuse_a: 25
        charger:
          protocol: ocpp
          ocpp:
            port: 9000
        """)
    assert (problem.key_path, problem.line, problem.message) == (
        "charger.ocpp.charge_point_id", 6, "is required when charger.protocol is 'ocpp'")


def test_missing_required_key_without_its_section_points_at_the_nearest_parent(tmp_path):
    problem = only_problem(tmp_path, "site:\n  fuse_a: 25\ncharger:\n  max_current_a: 16\n")
    assert (problem.key_path, problem.line) == ("charger.alfen.host", 3)


def test_empty_host_and_invalid_host(tmp_path):
    problem = only_problem(tmp_path, "charger:\n  alfen:\n    host: ''\n")
    assert (problem.key_path, problem.line, problem.message) == (
        "charger.alfen.host", 3, "must not be empty")
    problem = only_problem(tmp_path, "charger:\n  alfen:\n    host: http://wallbox/\n")
    assert problem.message.startswith("must be a host name or IP address")


def test_non_finite_numbers_are_refused(tmp_path):
    problems = problems_of(tmp_path, MINIMAL + "site:\n  fuse_a: .nan\n"
                                               "  nominal_voltage_v: .inf\n")
    assert [(p.key_path, p.message) for p in problems] == [
        ("site.fuse_a", "must be a finite number, got .nan"),
        ("site.nominal_voltage_v", "must be a finite number, got .inf"),
    ]


def test_setpoint_refresh_must_stay_within_the_charger_validity(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "    setpoint_refresh_s: 30\n")
    assert (problem.key_path, problem.message) == (
        "charger.alfen.setpoint_refresh_s", "must be between 1 and 25 s, got 30")


def test_port_bounds(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "web:\n  port: 70000\n")
    assert (problem.key_path, problem.line, problem.message) == (
        "web.port", 5, "must be between 1 and 65535, got 70000")


# -- cross-field rules ---------------------------------------------------------------------------

def test_min_current_above_max_current(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "  min_current_a: 20\n  max_current_a: 16\n")
    assert (problem.key_path, problem.line, problem.message) == (
        "charger.min_current_a", 4, "must be ≤ charger.max_current_a (16), got 20")


def test_charger_phases_above_site_phases(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "site:\n  phases: 1\n")
    assert problem.key_path == "charger.phases"
    assert problem.line == 1  # not in the file: the top of the file
    assert problem.message.startswith("must be ≤ site.phases (1)")


def test_safe_current_must_be_zero_or_a_chargeable_current(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "  safe_current_a: 4\n")
    assert (problem.key_path, problem.line) == ("charger.safe_current_a", 4)
    assert problem.message == ("must be 0 (stop) or between charger.min_current_a (6) and "
                               "charger.max_current_a (16), got 4")
    assert load_config(write(tmp_path, MINIMAL + "  safe_current_a: 8\n")) \
        .charger.safe_current_a == 8


def test_stale_timeout_must_exceed_the_tick(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "control:\n  tick_s: 5\n  stale_after_s: 5\n")
    assert (problem.key_path, problem.line, problem.message) == (
        "control.stale_after_s", 6, "must be longer than control.tick_s (5), got 5")


def test_carbon_budget_warning_must_be_below_the_critical_level(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "carbon:\n  budget:\n    warning_pct: 95\n")
    assert (problem.key_path, problem.line) == ("carbon.budget.warning_pct", 6)
    assert problem.message == ("must be below carbon.budget.critical_pct (95 %): a warning at "
                               "or above the critical level is never seen, got 95")
    assert load_config(write(tmp_path, MINIMAL + "carbon:\n  budget:\n    warning_pct: 90\n"
                             "    critical_pct: 99\n")).carbon.budget.warning_pct == 90


def test_empty_window_and_window_current_outside_charger_range(tmp_path):
    problems = problems_of(tmp_path, MINIMAL + textwrap.dedent("""\
        schedule:
          windows:
            - {start: "07:00", end: "07:00"}
            - start: "01:00"
              end: "02:00"
              current_a: 32
        """))
    assert [(p.key_path, p.line, p.message) for p in problems] == [
        ("schedule.windows[0].end", 6, "must differ from start (07:00): an empty window "
                                       "never charges"),
        ("schedule.windows[1].current_a", 9, "must be null or between charger.min_current_a "
                                             "(6) and charger.max_current_a (16), got 32"),
    ]


def test_ocpp_server_and_web_server_on_the_same_port(tmp_path):
    problem = only_problem(tmp_path, """
        charger:
          protocol: ocpp
          ocpp: {charge_point_id: cp1, port: 8088}
        """)
    assert (problem.key_path, problem.line) == ("charger.ocpp.port", 4)
    assert problem.message.startswith("clashes with web.port (8088)")
    # on different addresses the same port is fine
    load_config(write(tmp_path, """
        charger:
          protocol: ocpp
          ocpp: {charge_point_id: cp1, port: 8088, host: 192.168.1.2}
        web: {host: 127.0.0.1}
        """))


def test_cross_field_rule_is_not_repeated_when_a_key_is_already_wrong(tmp_path):
    problems = problems_of(tmp_path, MINIMAL + "  min_current_a: 100\n")
    assert [(p.key_path, p.message) for p in problems] == [
        ("charger.min_current_a", "must be between 6 and 80 A, got 100")]


# -- file-level problems -------------------------------------------------------------------------

def test_every_problem_is_reported_at_once_in_file_order(tmp_path):
    problems = problems_of(tmp_path, """
        site:
          fuse_a: 3
        charger:
          protocol: modbus
          min_current_a: 4
        web:
          enabled: maybe
        """)
    assert [(p.line, p.key_path) for p in problems] == [
        (3, "site.fuse_a"), (5, "charger.protocol"), (6, "charger.min_current_a"),
        (8, "web.enabled")]


def test_yaml_syntax_error_gives_its_line(tmp_path):
    problem = only_problem(tmp_path, "site:\n  fuse_a: 25\ncharger: [unclosed\nweb: {}\n")
    assert problem.key_path == ""
    assert problem.line == 4
    assert problem.message.startswith("invalid YAML: ")


def test_bad_indentation_is_a_yaml_error_with_line(tmp_path):
    problem = only_problem(tmp_path, "site:\n  fuse_a: 25\n    phases: 3\n")
    assert problem.line == 3 and "invalid YAML" in problem.message


def test_top_level_must_be_a_mapping(tmp_path):
    problem = only_problem(tmp_path, "- fuse_a: 25\n")
    assert (problem.key_path, problem.line) == ("", 1)
    assert problem.message == "the file must be a mapping of keys (key: value), got a list"


def test_duplicate_key_is_reported_and_lines_follow_the_value_that_wins(tmp_path):
    problems = problems_of(tmp_path, MINIMAL + "site:\n  fuse_a: 25\nsite:\n  fuse_a: 2\n")
    assert [(p.key_path, p.line, p.message) for p in problems] == [
        ("site", 6, "appears twice (first on line 4, this later one wins); remove one"),
        ("site.fuse_a", 7, "must be between 6 and 630 A, got 2"),
    ]


def test_alias_bombs_self_references_and_deep_nesting_are_refused_quickly(tmp_path):
    bomb = "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))
    problem = only_problem(tmp_path, MINIMAL + bomb)  # 10**10 values if expanded
    assert problem.message.startswith("the file expands to more than 10000 values")
    problem = only_problem(tmp_path, MINIMAL + "web: &w {port: *w}\n")
    assert (problem.line, problem.message) == (
        4, "invalid YAML: an alias refers to the value that contains it")
    problem = only_problem(tmp_path, MINIMAL + "web: " + "[" * 3000 + "]" * 3000 + "\n")
    assert problem.message == "the file is nested too deeply to be a phaeton config"


def test_long_values_are_shortened_in_messages(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "web: [" + ", ".join(["8088"] * 100) + "]\n")
    assert problem.key_path == "web"
    assert len(problem.message) < 120 and "..." in problem.message


def test_unknown_yaml_tag_is_reported_not_executed(tmp_path):
    problem = only_problem(tmp_path, MINIMAL + "data_dir: !!python/object:os.system {}\n")
    assert problem.line == 4 and "invalid YAML" in problem.message


def test_error_text_lists_every_problem_in_check_config_form(tmp_path):
    path = write(tmp_path, MINIMAL + "  max_current_a: 100\nweb:\n  port: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).splitlines() == [
        f"{path}:4: charger.max_current_a: must be between 6 and 80 A, got 100",
        f"{path}:6: web.port: must be between 1 and 65535, got 0",
    ]


def test_missing_unreadable_and_binary_files_are_unreadable_errors(tmp_path):
    with pytest.raises(ConfigUnreadable, match="No such file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigUnreadable, match="Is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "config.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigUnreadable, match="not UTF-8"):
        load_config(binary)


# -- validating plain data (the web UI's form) ---------------------------------------------------

def test_validate_config_data_reports_without_lines():
    problems = validate_config_data({"charger": {"alfen": {"host": "h"}, "max_current_a": 5}})
    assert problems == [ConfigProblem("charger.max_current_a", None,
                                      "must be between 6 and 80 A, got 5")]
    assert validate_config_data({"charger": {"alfen": {"host": "h"}}}) == []
    assert validate_config_data(["not", "a", "mapping"])[0].message == (
        "the config must be a mapping of keys, got a list")


def test_apply_defaults_leaves_wrong_types_for_validation_to_report():
    filled = apply_defaults({"site": "big", "charger": {"alfen": {"host": "h"}}})
    assert filled["site"] == "big"
    assert filled["charger"]["alfen"]["port"] == 502
    assert isinstance(parse_config_text(MINIMAL), Config)


# -- bad input never crashes ---------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6) | st.integers(), children, max_size=3),
    max_leaves=8)
_key_paths = st.sampled_from([
    (), ("site",), ("site", "fuse_a"), ("charger",), ("charger", "alfen"),
    ("charger", "alfen", "host"), ("charger", "protocol"), ("charger", "min_current_a"),
    ("charger", "ocpp"), ("schedule",), ("schedule", "windows"), ("control", "auto"),
    ("web", "port"), ("device", "unique_id"), ("typo",)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list("ab:- \n\t{}[]'\"#&*!|>%@`,.09")),
                    max_size=60))
def test_any_text_gives_a_config_or_a_config_error(text):
    try:
        result = parse_config_text(MINIMAL + text)
    except ConfigError as exc:
        assert exc.problems
        assert all(isinstance(p.line, int) and p.line >= 1 and p.message for p in exc.problems)
    else:
        assert isinstance(result, Config)


@settings(max_examples=150, deadline=None)
@given(path=_key_paths, value=_yaml_values)
def test_any_value_anywhere_gives_problems_at_or_below_that_key(path, value):
    data: dict = {"charger": {"alfen": {"host": "10.0.0.1"}}}
    if path:
        target = data
        for key in path[:-1]:
            existing = target.get(key)
            target[key] = existing if isinstance(existing, dict) else {}
            target = target[key]
        target[path[-1]] = value
    else:
        data = value
    problems = validate_config_data(data)
    dotted = ".".join(path)
    for problem in problems:
        assert problem.message
        assert problem.key_path.startswith(dotted) or problem.key_path.startswith("charger"), \
            (problem, dotted)
