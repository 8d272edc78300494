"""Issue 11 (items 1 and 2): every number is bounded to what an installation can need, and every
value a later stage parses (time zones, times, hosts, tariff settings, ...) is refused by
`phaeton check-config` and the web save when that stage would refuse it, with the key, the line,
the value and what is allowed."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import zoneinfo
from pathlib import Path

import pytest
import yaml

from phaeton import cli
from phaeton.config import (
    ConfigError,
    config_to_dict,
    load_config,
    parse_config_text,
    save_config,
    validate_config_data,
)
from phaeton.config_schema import CONFIG_SCHEMA

REPO = Path(__file__).resolve().parent.parent
MINIMAL = "charger:\n  alfen:\n    host: 192.168.1.50\n"   # lines 1-3; snippets start at 4


def check_config_subprocess(path) -> subprocess.CompletedProcess:
    """`phaeton check-config PATH` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "phaeton", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def write(tmp_path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- item 1: the tick that hung the service, and every other number ------------------------------

def test_a_nanosecond_tick_is_refused_by_check_config_with_the_range_and_unit(tmp_path):
    path = write(tmp_path, MINIMAL + "control:\n  tick_s: 1.0e-09\n")
    result = check_config_subprocess(path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:5: control.tick_s: must be between 0.25 and 60 s, got 1e-09"]


def test_a_nanosecond_tick_is_refused_by_the_web_save_and_nothing_is_written(tmp_path):
    path = write(tmp_path, MINIMAL)
    data = config_to_dict(load_config(path))
    data["control"]["tick_s"] = 1e-9
    with pytest.raises(ConfigError) as caught:
        save_config(path, data)
    assert [(p.key_path, p.message) for p in caught.value.problems] == [
        ("control.tick_s", "must be between 0.25 and 60 s, got 1e-09")]
    assert path.read_text(encoding="utf-8") == MINIMAL


def _numeric_leaves(schema, path=()):
    for key, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object":
            yield from _numeric_leaves(sub, path + (key,))
            continue
        kinds = sub["type"] if isinstance(sub["type"], list) else [sub["type"]]
        if {"number", "integer"} & set(kinds) and "enum" not in sub:
            yield path + (key,), sub


NUMERIC = list(_numeric_leaves(CONFIG_SCHEMA))


def test_every_number_has_a_finite_inclusive_range_its_default_lies_in():
    assert len(NUMERIC) > 60
    for path, sub in NUMERIC:
        low, high = sub.get("minimum"), sub.get("maximum")
        assert low is not None and high is not None, path  # no open "> 0": 1e-09 got through
        assert math.isfinite(low) and math.isfinite(high) and low < high, path
        if sub["default"] is not None:
            assert low <= sub["default"] <= high, path


def _with(path, value) -> dict:
    data: dict = {"charger": {"alfen": {"host": "192.168.1.50"}}}
    target = data
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return data


def _yaml_number(value) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@pytest.mark.parametrize("path, sub", NUMERIC, ids=[".".join(p) for p, _ in NUMERIC])
def test_every_number_outside_its_range_is_refused_naming_the_range_and_unit(path, sub):
    low, high = sub["minimum"], sub["maximum"]
    unit = f" {sub['x-unit']}" if sub.get("x-unit") else ""
    allowed = f"between {_yaml_number(low)} and {_yaml_number(high)}{unit}"
    for value in (low - 1, high + 1):
        problems = {p.key_path: p.message for p in validate_config_data(_with(path, value))}
        message = problems.get(".".join(path))
        assert message is not None, (path, value, problems)
        assert message.startswith(f"must be {allowed}"), message
        assert message.endswith(f"got {_yaml_number(value)}"), message
    assert validate_config_data(_with(path, low)) == [] or path in (
        ("control", "stale_after_s"),
        ("carbon", "budget", "critical_pct"))       # the bottom is below the default warning
    assert validate_config_data(_with(path, high)) == [] or path in (
        ("control", "tick_s"), ("charger", "min_current_a"), ("charger", "safe_current_a"),
        ("planner", "tariff", "refresh", "backoff_base_s"),
        ("carbon", "budget", "warning_pct"))        # the top is above the default critical


NOTABLE_LIMITS = {
    ("control", "tick_s"): (0.25, 60),
    ("control", "stale_after_s"): (1, 3600),
    ("control", "snapshot_s"): (1, 3600),
    ("control", "phase_switching", "settle_s"): (5, 600),
    ("control", "phase_switching", "grace_s"): (60, 86400),
    ("charger", "alfen", "timeout_s"): (0.1, 60),
    ("charger", "alfen", "setpoint_refresh_s"): (1, 25),
    ("charger", "alfen", "port"): (1, 65535),
    ("web", "port"): (1, 65535),
    ("planner", "replan_s"): (60, 3600),
    ("planner", "soc_drift_pct"): (1, 100),
    ("planner", "battery", "round_trip_efficiency_pct"): (50, 100),
    ("planner", "ev", "charge_efficiency_pct"): (50, 100),
    ("planner", "tariff", "timeout_s"): (1, 300),
    ("planner", "tariff", "refresh", "poll_s"): (60, 86400),
    ("planner", "tariff", "refresh", "backoff_base_s"): (10, 86400),
    ("planner", "tariff", "refresh", "backoff_max_s"): (60, 86400),
    ("session", "history_limit"): (1, 100000),
}


def test_the_notable_limits():
    found = dict(NUMERIC)
    for path, (low, high) in NOTABLE_LIMITS.items():
        assert (found[path]["minimum"], found[path]["maximum"]) == (low, high), path


def test_list_items_are_bounded_too(tmp_path):
    problems = validate_config_data(_with(("schedule", "windows"), [
        {"start": "22:00", "end": "06:00", "current_a": 81}]))
    assert [(p.key_path, p.message) for p in problems] == [
        ("schedule.windows[0].current_a", "must be between 0 and 80 A (or null), got 81")]
    problems = validate_config_data(_with(("planner", "tariff", "time_of_use"), {"windows": [
        {"start": "22:00", "end": "06:00", "import_eur_per_kwh": 11}]}))
    assert [(p.key_path, p.message) for p in problems] == [
        ("planner.tariff.time_of_use.windows[0].import_eur_per_kwh",
         "must be between -10 and 10 currency/kWh, got 11")]


def test_the_sample_and_realistic_edge_values_still_load(tmp_path):
    load_config(REPO / "config.yaml")
    load_config(write(tmp_path, textwrap.dedent("""\
        site: {fuse_a: 35, nominal_voltage_v: 120}
        charger:
          max_current_a: 32
          alfen: {host: wallbox.fritz.box., timeout_s: 0.5, reconnect_max_s: 60}
        control:
          tick_s: 0.5
          stale_after_s: 5
          auto: {smoothing_s: 0, enable_delay_s: 0, min_charge_duration_s: 0}
          phase_switching: {settle_s: 10, grace_s: 300}
        device: {custom_name: "Carport – left"}
        web: {host: "::", port: 80}
        planner:
          replan_s: 300
          soc_drift_pct: 2
          site: {tz: America/New_York, annual_load_kwh: 900}
          battery: {capacity_kwh: 5, round_trip_efficiency_pct: 75}
          ev: {capacity_kwh: 6.1, charge_efficiency_pct: 80, departure_time: "23:59"}
          tariff:
            type: file
            file: {location: "https://prices.example.com:8443/de/prices.csv?days=2"}
            tibber: {token: 5K4MVS-OjfWhK_4yrjOlFe1F6kJXPVf7eQYggo8ebAE,
                     home_id: 96a14971-525a-4420-aae9-e5aedaa129ff}
            entsoe: {token: 0f7a2c4e-1b2d-4c3e-9f80-123456789abc, area: 10YNL----------L}
            time_of_use:
              tz: UTC
              windows:
                - {days: [sat, sun], start: "00:00", end: "24:00", import_eur_per_kwh: 0.2}
                - {start: "22:45", end: "06:15", import_eur_per_kwh: 0.18}
            refresh: {publish_time: "12:45", publish_tz: Etc/GMT-1, backoff_base_s: 10,
                      backoff_max_s: 60}
            timeout_s: 1
        """)))
    for host in ("10.0.0.2", "fe80::1%eth0", "localhost", "my_wallbox", "0.0.0.0"):
        assert validate_config_data(_with(("charger", "alfen", "host"), host)) == [], host
    assert validate_config_data(_with(("planner", "tariff", "file", "location"),
                                      "/data/phaeton/prices.json")) == []


# -- item 2: values a later stage parses --------------------------------------------------------

def _tz_cases():
    return [
        ("planner:\n  site:\n    tz: Mars/Olympus\n", "planner.site.tz", 6,
         "must be an IANA time zone name this system knows, such as \"Europe/Berlin\" or "
         "\"UTC\", got 'Mars/Olympus'"),
        ("planner:\n  tariff:\n    time_of_use:\n      tz: europe/berlin\n",
         "planner.tariff.time_of_use.tz", 7, "got 'europe/berlin' (did you mean 'Europe/Berlin'?)"),
        ("planner:\n  tariff:\n    refresh:\n      publish_tz: CEST\n",
         "planner.tariff.refresh.publish_tz", 7, "got 'CEST'"),
        ("planner:\n  site:\n    tz: ../../etc/passwd\n", "planner.site.tz", 6,
         "got '../../etc/passwd'"),
    ]


@pytest.mark.parametrize("snippet, key, line, expected", _tz_cases())
def test_an_unknown_time_zone_is_refused_by_the_real_check_config(tmp_path, snippet, key, line,
                                                                 expected):
    path = write(tmp_path, MINIMAL + snippet)
    result = check_config_subprocess(path)
    assert result.returncode == 1, result.stdout
    (printed,) = result.stdout.splitlines()
    assert printed.startswith(f"{path}:{line}: {key}: must be an IANA time zone name"), printed
    assert expected in printed


def test_the_planners_own_time_zone_rule_is_the_one_applied():
    from phaeton.planning.problem_builder import PlannerInputError, _zone

    with pytest.raises(PlannerInputError, match="unknown time zone"):
        _zone("Mars/Olympus")
    for name in sorted(zoneinfo.available_timezones())[::25] + ["UTC"]:
        assert validate_config_data(_with(("planner", "site", "tz"), name)) == [], name
        _zone(name)


LATER_PARSED = [
    # (snippet after MINIMAL, key, line, what the message says)
    ("planner:\n  ev:\n    departure_time: \"7:00\"\n", "planner.ev.departure_time", 6,
     "must be a time \"HH:MM\" from 00:00 to 23:59, got '7:00'"),
    ("planner:\n  tariff:\n    refresh:\n      publish_time: \"13:60\"\n",
     "planner.tariff.refresh.publish_time", 7, "got '13:60'"),
    ("schedule:\n  windows:\n    - {start: \"24:00\", end: \"06:00\"}\n",
     "schedule.windows[0].start", 6, "got '24:00'"),
    ("schedule:\n  windows:\n    - {days: [monday], start: \"22:00\", end: \"06:00\"}\n",
     "schedule.windows[0].days[0]", 6, "got 'monday' (did you mean 'mon'?)"),
    ("planner:\n  tariff:\n    time_of_use:\n      windows:\n"
     "        - {start: \"07:10\", end: \"08:00\", import_eur_per_kwh: 0.2}\n",
     "planner.tariff.time_of_use.windows[0].start", 8,
     "must be a quarter hour \"HH:MM\" from 00:00 to 23:45 (minutes 00, 15, 30 or 45), "
     "got '07:10'"),
    ("planner:\n  tariff:\n    time_of_use:\n      windows:\n"
     "        - {start: \"22:00\", end: \"24:15\", import_eur_per_kwh: 0.2}\n",
     "planner.tariff.time_of_use.windows[0].end", 8, "from 00:00 to 24:00"),
    ("planner:\n  tariff:\n    time_of_use:\n      windows:\n"
     "        - {days: [mon, funday], start: \"22:00\", end: \"06:00\", "
     "import_eur_per_kwh: 0.2}\n",
     "planner.tariff.time_of_use.windows[0].days[1]", 8, "got 'funday'"),
    ("planner:\n  tariff:\n    time_of_use:\n      windows:\n"
     "        - {start: 22:00, end: \"06:00\", import_eur_per_kwh: 0.2}\n",
     "planner.tariff.time_of_use.windows[0].start", 8,
     "must be a time in quotes like \"22:00\", got 1320"),
    ("planner:\n  tariff:\n    type: tibber\n", "planner.tariff.tibber.token", 5,
     "is required when planner.tariff.type is 'tibber'"),
    ("planner:\n  tariff:\n    type: entsoe\n    entsoe: {area: 10YNL----------L}\n",
     "planner.tariff.entsoe.token", 7, "is required when planner.tariff.type is 'entsoe'"),
    ("planner:\n  tariff:\n    type: file\n", "planner.tariff.file.location", 5,
     "is required when planner.tariff.type is 'file'"),
    ("planner:\n  tariff:\n    tibber:\n      token: \"my token\"\n",
     "planner.tariff.tibber.token", 7,
     "must be an API token of letters, digits and - . _ ~ + / = (no spaces or quotes), "
     "got 'my token'"),
    ("planner:\n  tariff:\n    tibber:\n      home_id: my-house\n",
     "planner.tariff.tibber.home_id", 7, "(a UUID), got 'my-house'"),
    ("planner:\n  tariff:\n    entsoe:\n      area: DE-LU\n", "planner.tariff.entsoe.area", 7,
     "must be a 16-character EIC code of a bidding zone such as \"10Y1001A1001A82H\" (DE-LU), "
     "got 'DE-LU'"),
    ("planner:\n  tariff:\n    file:\n      location: prices.csv\n",
     "planner.tariff.file.location", 7,
     "must be an absolute file path (starting with /) or an http:// or https:// URL, "
     "got 'prices.csv'"),
    ("planner:\n  tariff:\n    file:\n      location: ftp://example.com/prices.csv\n",
     "planner.tariff.file.location", 7, "got 'ftp://example.com/prices.csv'"),
    ("planner:\n  tariff:\n    file:\n      location: https:///prices.csv\n",
     "planner.tariff.file.location", 7, "must be an http(s) URL with a host name"),
    ("planner:\n  tariff:\n    file:\n      location: http://example.com:99999/p.csv\n",
     "planner.tariff.file.location", 7, "has an invalid port in the URL"),
    ("planner:\n  tariff:\n    refresh:\n      backoff_base_s: 600\n      backoff_max_s: 300\n",
     "planner.tariff.refresh.backoff_max_s", 8,
     "must be at least planner.tariff.refresh.backoff_base_s (600 s), got 300"),
    ("    port: 502\n  ocpp:\n    host: \"[::]\"\n", "charger.ocpp.host", 6,
     "must be an IPv6 address without brackets, got '[::]'"),
    ("web:\n  host: \"*\"\n", "web.host", 5,
     "must be a host name or IP address (letters, digits, hyphens and dots) without a port, "
     "got '*'"),
    ("web:\n  host: 192.168.1.256\n", "web.host", 5, "is not a valid IPv4 address"),
    ("web:\n  password_hash: letmein\n", "web.password_hash", 5,
     "is not usable (the password hash must look like scrypt$N$r$p$salt$hash"),
    ("device:\n  custom_name: \"Carport\\nleft\"\n", "device.custom_name", 5,
     "must be one line of text without tabs or control characters"),
    ("session:\n  currency: euro\n", "session.currency", 5,
     "must be a three-letter code such as EUR, got 'euro'"),
    ("data_dir: data/phaeton\n", "data_dir", 4,
     "must be an absolute path (starting with /), got 'data/phaeton'"),
    ("logging:\n  level: verbose\n", "logging.level", 5, "got 'verbose'"),
]
_HOST_IN_MINIMAL = ("charger:\n  alfen:\n    host: 192.168.1.50:502\n",
                    "charger.alfen.host", 3,
                    "must be the address alone, without ':502' (the port has its own key), "
                    "got '192.168.1.50:502'")


@pytest.mark.parametrize("snippet, key, line, expected", LATER_PARSED + [_HOST_IN_MINIMAL],
                         ids=[f"{case[1]}-{index}"
                              for index, case in enumerate(LATER_PARSED + [_HOST_IN_MINIMAL])])
def test_check_config_refuses_what_a_later_stage_would_refuse(tmp_path, capsys, snippet, key,
                                                              line, expected):
    text = snippet if snippet.startswith("charger:\n  alfen:\n    host: 192.168.1.50:") \
        else MINIMAL + snippet
    path = write(tmp_path, text)
    assert cli.main(["check-config", str(path)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1, printed
    assert printed[0].startswith(f"{path}:{line}: {key}: "), printed[0]
    assert expected in printed[0], printed[0]


def test_the_real_check_config_lists_every_later_parsed_mistake_with_its_line(tmp_path):
    text = textwrap.dedent("""\
        data_dir: data/phaeton
        charger:
          alfen:
            host: 192.168.1.50:502
        web:
          host: "*"
          password_hash: letmein
        planner:
          site:
            tz: Mars/Olympus
          ev:
            departure_time: "7:00"
          tariff:
            type: tibber
            time_of_use:
              tz: Europe/Atlantis
              windows:
                - {start: "07:10", end: "08:00", import_eur_per_kwh: 0.2}
            entsoe: {area: germany}
            file: {location: prices.csv}
            refresh: {publish_tz: CEST, backoff_base_s: 600, backoff_max_s: 300}
        """)
    path = write(tmp_path, text)
    result = check_config_subprocess(path)
    assert result.returncode == 1
    where = [line.split(": ", 2)[:2] for line in result.stdout.splitlines()]
    assert where == [
        [f"{path}:1", "data_dir"],
        [f"{path}:4", "charger.alfen.host"],
        [f"{path}:6", "web.host"],
        [f"{path}:7", "web.password_hash"],
        [f"{path}:10", "planner.site.tz"],
        [f"{path}:12", "planner.ev.departure_time"],
        [f"{path}:13", "planner.tariff.tibber.token"],
        [f"{path}:16", "planner.tariff.time_of_use.tz"],
        [f"{path}:18", "planner.tariff.time_of_use.windows[0].start"],
        [f"{path}:19", "planner.tariff.entsoe.area"],
        [f"{path}:20", "planner.tariff.file.location"],
        [f"{path}:21", "planner.tariff.refresh.backoff_max_s"],
        [f"{path}:21", "planner.tariff.refresh.publish_tz"],
    ]
    assert result.stderr.strip() == f"{path}: 13 problems"


def test_the_web_save_refuses_an_unknown_time_zone_and_keeps_the_file(tmp_path):
    path = write(tmp_path, MINIMAL)
    data = yaml.safe_load(MINIMAL)
    data["planner"] = {"site": {"tz": "Mars/Olympus"}}
    with pytest.raises(ConfigError) as caught:
        save_config(path, data)
    assert [p.key_path for p in caught.value.problems] == ["planner.site.tz"]
    assert path.read_text(encoding="utf-8") == MINIMAL


def test_the_later_stages_refuse_the_same_values():
    """What check-config now refuses is what the planner, the tariffs and the web UI refuse."""
    from phaeton.planning.tariffs import EntsoeConfig, RefreshPolicy, TouWindow
    from phaeton.planning.tariffs.factory import TariffConfigError, tariff_from_config
    from phaeton.web.passwords import PasswordHashError, check_hash_format

    with pytest.raises(ValueError, match="quarter hour"):
        TouWindow(days=("mon",), start="07:10", end="08:00", import_eur_per_kwh=0.2)
    with pytest.raises(ValueError, match="out of range"):
        TouWindow(days=("mon",), start="22:00", end="24:15", import_eur_per_kwh=0.2)
    with pytest.raises(ValueError, match="EIC"):
        EntsoeConfig(token="t", area="DE-LU")
    with pytest.raises(ValueError, match="backoff"):
        RefreshPolicy(backoff_base_s=600, backoff_max_s=300)
    with pytest.raises(ValueError, match="publish_tz"):
        RefreshPolicy(publish_tz="CEST")
    for kind in ("tibber", "entsoe", "file"):
        with pytest.raises(TariffConfigError):
            tariff_from_config({"type": kind})
    with pytest.raises(PasswordHashError):
        check_hash_format("letmein")


@pytest.mark.parametrize("tariff", [
    {"type": "static"},
    {"type": "time_of_use", "time_of_use": {"tz": "UTC", "windows": [
        {"days": ["sat", "sun"], "start": "00:00", "end": "24:00", "import_eur_per_kwh": 0.2},
        {"start": "22:45", "end": "06:15", "import_eur_per_kwh": 0.18}]}},
    {"type": "tibber", "tibber": {"token": "5K4MVS-OjfWhK_4yrjOlFe1F6kJXPVf7eQYggo8ebAE",
                                  "home_id": "96a14971-525a-4420-aae9-e5aedaa129ff"}},
    {"type": "entsoe", "entsoe": {"token": "0f7a2c4e-1b2d-4c3e-9f80-123456789abc",
                                  "area": "10YNL----------L"},
     "refresh": {"publish_tz": "Etc/GMT-1", "backoff_base_s": 10, "backoff_max_s": 60}},
    {"type": "file", "file": {"location": "https://example.com:8443/prices.csv?d=2"},
     "timeout_s": 1},
    {"type": "file", "file": {"location": "/data/phaeton/prices.json"}},
], ids=lambda t: t["type"])
def test_what_check_config_accepts_the_tariff_and_planner_accept(tariff):
    from phaeton.planner.service import tariff_mapping
    from phaeton.planning.problem_builder import SiteFacts, _zone
    from phaeton.planning.tariffs.factory import tariff_from_config

    config = parse_config_text(yaml.safe_dump(_with(("planner", "tariff"), tariff)))
    tariff_from_config(tariff_mapping(config.planner.tariff))
    _zone(SiteFacts.from_config(config).tz)
