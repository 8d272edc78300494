"""The one JSON Schema (draft 2020-12) of phaeton's config.yaml.

It serves three purposes at once:
- validation (`phaeton.config` runs it with `phaeton.config_validate`, a checker for exactly
  the keywords used here),
- the documented defaults (every key has a `default`, except the charger address, which is
  required depending on `charger.protocol` through `if`/`then`),
- the web UI's settings form (`description`, `type`, bounds and `enum` of every key).

The charger's part (the `charger.protocol` enum, one section per protocol and which of its keys
are required) comes from the registered charger kinds (`phaeton.chargers.registry`); the
building blocks (`_number`, `_string`, `_section`, ...) from `phaeton.config_schema_parts`. The
tariff's part (the `planner.tariff.type` enum, one section per tariff and the keys the
fetching tariffs share) comes from the registered tariffs (`phaeton.planning.tariffs.registry`).
The top-level `carbon` section (the `carbon.source` enum, one section per source, their shared
keys and "required when" rules) comes from the registered carbon sources
(`phaeton.planning.carbon.registry`).

Rules that JSON Schema cannot express (one key compared with another, e.g.
`charger.min_current_a <= charger.max_current_a`) live in `phaeton.config.cross_field_problems`;
the descriptions of the keys involved mention them.

Extension keywords (ignored by validators, used for messages and the UI):
- `x-unit`: the unit of a number, for the UI and the sample's comments.
- `x-pattern-hint`: what a `pattern` means, in words, for the error message.
- `x-required-when`: why a conditionally required key is required.
- `x-time`: a local time of day "HH:MM" (YAML reads it as a number unless it is quoted).
- `x-format` / `x-format-hint`: a value a later stage parses, checked by `phaeton.config` when
  the config is loaded or saved (what the format means, in words, for the message):
  `timezone` (zoneinfo must know it), `host` (an IP address or a DNS host name), `location`
  (an absolute path or an http(s):// URL) and `password-hash` (the web UI's scrypt hash).

Every number has a lower and an upper bound a real installation could need (durations that
would make a loop spin, e.g. `control.tick_s: 1.0e-09`, are refused), and every default obeys
its own bounds.
"""
from __future__ import annotations

from typing import Any

from phaeton.chargers.registry import CHARGER_KINDS, default_protocol, protocol_description
from phaeton.config_schema_parts import boolean as _boolean
from phaeton.config_schema_parts import formatted as _formatted
from phaeton.config_schema_parts import host as _host
from phaeton.config_schema_parts import number as _number
from phaeton.config_schema_parts import port as _port
from phaeton.config_schema_parts import seconds as _seconds
from phaeton.config_schema_parts import section as _section
from phaeton.config_schema_parts import string as _string
from phaeton.config_schema_parts import time_of_day as _time
from phaeton.config_schema_parts import zone as _zone
from phaeton.planning.carbon.registry import carbon_schema
from phaeton.planning.objectives import OBJECTIVES
from phaeton.planning.solar.registry import pv_forecast_schema
from phaeton.planning.tariffs.registry import tariff_schema
from phaeton.vehicles.schema import vehicles_schema

SCHEMA_ID = "urn:phaeton:config"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f]*$"


def _budget_pair(whose: str) -> dict[str, Any]:
    return _section(f"Budgets of the {whose}; null = none.", {
        "month_kg": _number(None, f"Emissions the {whose} may cause per calendar month.",
                            "kg", nullable=True, minimum=0.1, maximum=1000000),
        "year_kg": _number(None, f"Emissions the {whose} may cause per calendar year.", "kg",
                           nullable=True, minimum=0.1, maximum=10000000),
    })


def _carbon_with_budget() -> dict[str, Any]:
    """The registered carbon sources' section plus `carbon.budget` (docs/carbon.md,
    "Budgets"): kg CO2-eq per local month and year, for the site and for the cars."""
    schema = carbon_schema()
    schema["properties"]["budget"] = _section(
        "Carbon budgets, kg CO2-eq per local calendar month or year (planner.site.tz); "
        "used only with a carbon source. Each threshold is announced once per period "
        "(log, D-Bus, web UI, GX notification).", {
            "site": _budget_pair("site (house + cars)"),
            "car": _budget_pair("cars (all chargers together)"),
            "warning_pct": _number(80, "Usage that raises the warning; must be below "
                                   "critical_pct.", "%", minimum=1, maximum=1000),
            "critical_pct": _number(95, "Usage that raises the critical level.", "%",
                                    minimum=1, maximum=1000),
        })
    return schema


def _charger_properties() -> dict[str, Any]:
    """The keys of one charger: the `charger` section's and each `chargers` entry's."""
    return {
        "protocol": _string(default_protocol(), protocol_description(),
                            enum=list(CHARGER_KINDS)),
        "position": _number(1, "Where the charger is connected: 0 = AC output, 1 = AC "
                            "input (Victron /Position).", integer=True) | {"enum": [0, 1]},
        "min_current_a": _number(6, "Lowest charging current per phase (IEC 61851: 6 A); "
                                 "must be <= max_current_a.", "A", minimum=6, maximum=80),
        "max_current_a": _number(16, "Highest charging current per phase, the charger's "
                                 "or cable's limit.", "A", minimum=6, maximum=80),
        "phases": _number(3, "Phases wired to the charger (1 or 3); must be <= "
                          "site.phases.", integer=True) | {"enum": [1, 3]},
        "safe_current_a": _number(0, "Fail-safe current per phase when readings are stale "
                                  "in Auto mode: 0 (stop) or within min_current_a.."
                                  "max_current_a.", "A", minimum=0, maximum=80),
        **{kind.name: kind.schema_section() for kind in CHARGER_KINDS.values()},
    }


ID_PATTERN = r"^[A-Za-z0-9_]{1,32}$"
ID_HINT = "1 to 32 letters, digits or underscores"

_CHARGER_ENTRY = {
    "type": "object",
    "description": "One of several chargers.",
    "additionalProperties": False,
    "required": ["id"],
    "properties": {
        "id": _string(None, "The charger's id: the suffix of its D-Bus service name "
                      "com.victronenergy.evcharger.phaeton_<id>; quote it in YAML.",
                      pattern=ID_PATTERN, hint=ID_HINT),
        **_charger_properties(),
        "phase": _string("L1", "The grid phase a single-phase charger is wired to.",
                         enum=["L1", "L2", "L3"]),
        "priority": _number(0, "Who gets current first when the circuits cannot give "
                            "everyone their wish (higher first; equal: shared evenly).",
                            integer=True, minimum=0, maximum=9),
        "circuit": _string("main", "The circuit the charger hangs below (a `circuits` name, "
                           "or main).", pattern=ID_PATTERN, hint=ID_HINT),
        "custom_name": _string("", "Name shown on the GX and VRM (empty = product name).",
                               pattern=NO_CONTROL_PATTERN,
                               hint="one line of text without tabs or control characters",
                               max_length=64),
        "ev_capacity_kwh": _number(None, "Usable battery of the car that charges here, for "
                                   "the plan (null = planner.ev.capacity_kwh).", "kWh",
                                   minimum=1, maximum=300, nullable=True),
        "instance": _number(None, "Preferred VRM device instance (null = device.instance "
                            "plus the charger's place in the list).", integer=True,
                            minimum=0, maximum=999, nullable=True),
    },
    "allOf": [kind.schema_rule() for kind in CHARGER_KINDS.values()],
}

def _without_default(schema: dict[str, Any]) -> dict[str, Any]:
    """A required key: no default to fall back on."""
    return {key: value for key, value in schema.items() if key != "default"}


_CIRCUIT = {
    "type": "object",
    "description": "A fuse or breaker below the main fuse.",
    "additionalProperties": False,
    "required": ["name", "max_current_a"],
    "properties": {
        "name": _string(None, "The circuit's name (not main: that is site.fuse_a).",
                        pattern=ID_PATTERN, hint=ID_HINT),
        "max_current_a": _without_default(_number(0, "Its limit per phase.", "A", minimum=1,
                                                  maximum=630)),
        "parent": _string("main", "The circuit it hangs below (main: the grid connection).",
                          pattern=ID_PATTERN, hint=ID_HINT),
    },
}


_SCHEDULE_WINDOW = {
    "type": "object",
    "description": "One charging window of the Scheduled mode.",
    "additionalProperties": False,
    "required": ["start", "end"],
    "properties": {
        "days": {
            "type": "array",
            "description": "Days the window starts on (mon..sun); all days when left out.",
            "default": list(WEEKDAYS),
            "items": {"type": "string", "enum": list(WEEKDAYS)},
            "minItems": 1,
            "uniqueItems": True,
        },
        "start": _time(None, "Start time, local, \"HH:MM\" in quotes."),
        "end": _time(None, "End time, local, \"HH:MM\" in quotes; an end before the start "
                     "crosses midnight. Must differ from start."),
        "current_a": _number(None, "Charging current per phase inside the window; null = "
                             "charger.max_current_a. Must lie within the charger's "
                             "min_current_a..max_current_a.", "A",
                             minimum=0, maximum=80, nullable=True),
    },
}

_PV_ARRAY = {
    "type": "object",
    "description": "One PV array of several (roofs facing different ways) behind the site's "
                   "PV meter.",
    "additionalProperties": False,
    "required": ["kwp"],
    "properties": {
        "kwp": _number(None, "Peak power of this array.", "kWp", minimum=0, maximum=10000),
        "tilt_deg": _number(30, "Tilt of its panels (0 = flat).", "deg", minimum=0,
                            maximum=90),
        "azimuth_deg": _number(180, "Direction its panels face (180 = south, 90 = east).",
                               "deg", minimum=0, maximum=360),
    },
}

_PLANNER = _section("The energy planner: prices, forecasts, the 24-48 h plan for the EV and the "
                    "home battery, and how the battery is steered (phaeton plan prints it).", {
    "strategy": _string("optimise", "Default battery strategy (the GX setting "
                        "/Settings/Phaeton/Planner/Strategy overrides it): off, "
                        "self_consumption or optimise. Quote \"off\" in YAML (a bare off "
                        "reads as false).",
                        enum=["off", "self_consumption", "optimise"]),
    "objective": _string("cost", "What the optimise strategy minimises (the GX setting "
                         "/Settings/Phaeton/Planner/Objective overrides it): cost, carbon (the "
                         "grid import's CO2, needs a carbon source) or cost_with_carbon_price.",
                         enum=list(OBJECTIVES)),
    "carbon_price_per_tonne": _number(0, "Carbon price added to the cost for "
                                      "cost_with_carbon_price (the GX setting "
                                      "/Settings/Phaeton/Planner/CarbonPrice overrides it).",
                                      "currency/t", minimum=0, maximum=10000),
    "ess_control": _string("off", "How the plan steers the home battery: dess_schedule "
                           "(Dynamic ESS mode 4 target-SoC windows), setpoint (volatile hub4 "
                           "grid setpoint) or off (plan only, the battery is not touched). "
                           "Quote \"off\" in YAML.",
                           enum=["dess_schedule", "setpoint", "off"]),
    "horizon_h": _number(48, "How far ahead the plan looks.", "h", integer=True, minimum=24,
                         maximum=48),
    "replan_s": _number(900, "Re-plan at least this often.", "s", minimum=60, maximum=3600),
    "soc_drift_pct": _number(5, "Re-plan early when the measured battery SoC differs from the "
                             "plan by more than this.", "%", minimum=1, maximum=100),
    "site": _section("Where the house and its panels are (PV and load forecasts).", {
        "tz": _zone("Europe/Berlin", "Time zone of the site (IANA name)."),
        "latitude_deg": _number(51.0, "Latitude of the site.", "deg", minimum=-90,
                                maximum=90),
        "longitude_deg": _number(10.0, "Longitude of the site (east positive).", "deg",
                                 minimum=-180, maximum=180),
        "pv_kwp": _number(0, "Peak power of the PV array (0 = no PV).", "kWp", minimum=0,
                          maximum=10000),
        "pv_tilt_deg": _number(30, "Tilt of the panels (0 = flat).", "deg", minimum=0,
                               maximum=90),
        "pv_azimuth_deg": _number(180, "Direction the panels face (180 = south, 90 = east).",
                                  "deg", minimum=0, maximum=360),
        "pv_arrays": {
            "type": "array",
            "description": "Several PV arrays (e.g. an east and a west roof) instead of "
                           "pv_kwp, pv_tilt_deg and pv_azimuth_deg, which are then not used; "
                           "the forecast learns from the site's total PV.",
            "default": [],
            "items": _PV_ARRAY,
            "maxItems": 8,
        },
        "annual_load_kwh": _number(3500, "House consumption per year without the EV, used "
                                   "until phaeton has its own history.", "kWh",
                                   minimum=100, maximum=1000000),
    }),
    "battery": _section("The home battery (capacity 0 = none).", {
        "capacity_kwh": _number(0, "Usable capacity (0 = no battery).", "kWh", minimum=0,
                                maximum=10000),
        "min_soc_pct": _number(10, "Lowest SoC the plan uses (default of the GX setting "
                               "MinimumSoc; the GX's ESS minimum applies when higher).", "%",
                               minimum=0, maximum=100),
        "reserve_soc_pct": _number(0, "Backup reserve the plan keeps on top (default of the GX "
                                   "setting ReserveSoc).", "%", minimum=0, maximum=100),
        "max_soc_pct": _number(100, "Highest SoC the plan charges to.", "%", minimum=1,
                               maximum=100),
        "max_charge_kw": _number(5, "Highest charging power (AC side).", "kW", minimum=0,
                                 maximum=1000),
        "max_discharge_kw": _number(5, "Highest discharging power (AC side).", "kW",
                                    minimum=0, maximum=1000),
        "round_trip_efficiency_pct": _number(90, "AC to AC round-trip efficiency.", "%",
                                             minimum=50, maximum=100),
        "degradation_eur_per_kwh": _number(0.02, "Wear cost per kWh in or out (default of "
                                           "the GX setting DegradationCost).",
                                           "currency/kWh", minimum=0, maximum=10),
        "allow_grid_charging": _boolean(True, "The plan may charge the battery from the grid."),
        "assumed_soc_pct": _number(50, "SoC `phaeton plan` assumes when no GX reading is at "
                                   "hand.", "%", minimum=0, maximum=100),
    }),
    "grid": _section("Grid limits of the plan (import is limited by site.fuse_a).", {
        "allow_export": _boolean(True, "The plan may feed energy into the grid."),
        "export_limit_kw": _number(None, "Highest feed-in power; null = the fuse's power.",
                                   "kW", minimum=0, maximum=10000, nullable=True),
    }),
    "ev": _section("The car the plan charges (Scheduled mode).", {
        "capacity_kwh": _number(60, "Battery capacity of the car.", "kWh", minimum=1,
                                maximum=500),
        "departure_time": _time("07:00", "When the car leaves, local, \"HH:MM\" in quotes."),
        "target_soc_pct": _number(80, "SoC the car should have at departure.", "%",
                                  minimum=0, maximum=100),
        "target_kwh": _number(None, "Energy to add by departure instead of a SoC target; "
                              "null = use target_soc_pct.", "kWh", minimum=0, maximum=500,
                              nullable=True),
        "assumed_soc_pct": _number(30, "The car's SoC when the charger cannot tell it.", "%",
                                   minimum=0, maximum=100),
        "charge_efficiency_pct": _number(90, "Share of the AC energy that reaches the car's "
                                         "battery.", "%", minimum=50, maximum=100),
    }),
    "tariff": tariff_schema(),
    "pv_forecast": pv_forecast_schema(),
})

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "phaeton configuration",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "data_dir": _string("/data/phaeton", "Directory for state, sessions and history "
                            "(an absolute path; /data survives firmware updates on a GX).",
                            pattern=r"^/", hint="an absolute path (starting with /)",
                            max_length=1024),
        "site": _section("The grid connection.", {
            "fuse_a": _number(25, "Main fuse per phase; the house and the EV together never "
                              "draw more.", "A", minimum=6, maximum=630),
            "phases": _number(3, "Phases of the grid connection (1 or 3).",
                              integer=True) | {"enum": [1, 3]},
            "nominal_voltage_v": _number(230, "Nominal phase voltage, used to convert "
                                         "between current and power.", "V", minimum=100,
                                         maximum=260),
            "consumption_includes_ev": _boolean(True, "The GX's /Ac/Consumption already "
                                                "contains the EV (charger on the AC input "
                                                "side, see charger.position)."),
        }),
        "charger": _section("The EV charger (one charger; for several use `chargers`).",
                            _charger_properties(),
                            allOf=[kind.schema_rule() for kind in CHARGER_KINDS.values()]),
        "chargers": {
            "type": "array",
            "description": "Several chargers, each its own device on the GX (instead of "
                           "`charger` and `device`, which then must not be set); ids, Modbus "
                           "units and OCPP ids must not repeat.",
            "default": [],
            "items": _CHARGER_ENTRY,
            "maxItems": 32,
        },
        "circuits": {
            "type": "array",
            "description": "Fuses or breakers below the main fuse (site.fuse_a, named "
                           "'main'), each below its parent; chargers name the circuit they "
                           "hang below.",
            "default": [],
            "items": _CIRCUIT,
            "maxItems": 32,
        },
        "control": _section("The control loop.", {
            "tick_s": _number(2, "Charger control tick.", "s", minimum=0.25, maximum=60),
            "turn_s": _seconds(900, "Several chargers without room for every minimum take "
                               "turns: each charges at least this long before the next one's "
                               "turn.", minimum=60, maximum=86400),
            "snapshot_s": _number(10, "Power-flow snapshot and history interval.", "s",
                                  minimum=1, maximum=3600),
            "stale_after_s": _seconds(30, "GX readings older than this are stale (must be "
                                      "longer than tick_s).", minimum=1),
            "fuse_recovery_delay_s": _seconds(30, "After a cut for the fuse, wait this long "
                                              "before raising the current again."),
            "auto": _section("Auto mode (solar surplus).", {
                "smoothing_s": _seconds(30, "Time constant of the surplus smoothing."),
                "start_margin_w": _number(0, "Surplus above the minimum charging power needed "
                                          "to start; negative values allow starting with "
                                          "some grid import.", "W", minimum=-50000,
                                          maximum=50000),
                "enable_delay_s": _seconds(60, "Surplus must last this long before charging "
                                           "starts."),
                "disable_delay_s": _seconds(180, "Surplus must be missing this long before "
                                            "charging stops."),
                "min_charge_duration_s": _seconds(300, "Once started, charge at least this "
                                                  "long.", maximum=86400),
                "battery_priority_soc_pct": _number(0, "Below this home-battery state of "
                                                    "charge the battery gets the surplus "
                                                    "first (0 = off).", "%", minimum=0,
                                                    maximum=100),
            }),
            "phase_switching": _section("Switching between 1 and 3 phases (when the charger "
                                        "supports it and 3 phases are wired).", {
                "enabled": _boolean(True, "Switch phases automatically in Auto mode."),
                "hysteresis_w": _number(300, "Power margin around the switching point.", "W",
                                        minimum=0, maximum=10000),
                "delay_s": _seconds(120, "The condition must last this long before "
                                    "switching."),
                "settle_s": _seconds(30, "Pause with the charger stopped while switching.",
                                     minimum=5, maximum=600),
                "grace_s": _seconds(600, "Minimum time between two switches (spares the "
                                    "contactors).", minimum=60, maximum=86400),
            }),
        }),
        "schedule": _section("Charging windows of the Scheduled mode.", {
            "windows": {
                "type": "array",
                "description": "Charging windows; days default to all, an end before the "
                               "start crosses midnight.",
                "default": [{"days": list(WEEKDAYS), "start": "22:00", "end": "06:00",
                             "current_a": None}],
                "items": _SCHEDULE_WINDOW,
                "maxItems": 50,
            },
        }),
        "session": _section("Charging sessions and their cost.", {
            "price_per_kwh": _number(0.30, "Energy price used for the session cost.",
                                     "currency/kWh", minimum=0, maximum=100),
            "currency": _string("EUR", "Currency of the cost (ISO 4217 code).",
                                pattern=r"^[A-Z]{3}$", hint="a three-letter code such as EUR"),
            "history_limit": _number(1000, "Number of finished sessions kept; the oldest are "
                                     "deleted.", integer=True, minimum=1, maximum=100000),
        }),
        "device": _section("How the charger appears on the GX's D-Bus and VRM.", {
            "custom_name": _string("", "Name shown on the GX and VRM (empty = product name).",
                                   pattern=NO_CONTROL_PATTERN,
                                   hint="one line of text without tabs or control characters",
                                   max_length=64),
            "instance": _number(40, "Preferred VRM device instance (the GX's settings service "
                                "may pick the next free one).", integer=True, minimum=0,
                                maximum=999),
            "unique_id": _string("0", "Suffix of the D-Bus service name "
                                 "com.victronenergy.evcharger.phaeton_<unique_id>; quote "
                                 "it in YAML.", pattern=r"^[A-Za-z0-9_]{1,32}$",
                                 hint="1 to 32 letters, digits or underscores"),
        }),
        "web": _section("The web UI and REST API.", {
            "enabled": _boolean(True, "Serve the web UI."),
            "host": _host("0.0.0.0", "Address the web server listens on (0.0.0.0 = all IPv4 "
                          "addresses)."),
            "port": _port(8088, "TCP port of the web server."),
            "password_hash": _formatted(_string(
                None, "Hash of the web UI password (set by install.sh, set_password or the web UI's login page); null = no password yet.",
                nullable=True, min_length=1, max_length=1024), "password-hash"),
        }),
        "planner": _PLANNER,
        "vehicles": vehicles_schema(),
        "carbon": _carbon_with_budget(),
        "fleet": _section("Schedules from an operator over an MQTT broker (docs/fleet.md).", {
            "enabled": _boolean(False, "Take schedules from the fleet broker."),
            "site_id": _string(None, "This site's id in the fleet's topics "
                               "(<topic_prefix>/<site_id>/...); required when enabled.",
                               nullable=True, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                               hint="1 to 64 letters, digits, _ . or -"),
            "hmac_key": _string(None, "The site's key: every schedule must carry its "
                                "HMAC-SHA256; required when enabled.", nullable=True,
                                min_length=16, max_length=256),
            "topic_prefix": _string("phaeton/fleet", "The topics' prefix.",
                                    pattern=r"^[^#+]{1,100}$",
                                    hint="1 to 100 characters without # or +"),
            "telemetry_s": _seconds(60, "How often the site publishes its telemetry.",
                                    minimum=5),
            "broker": _section("The operator's MQTT broker.", {
                "host": _host("127.0.0.1", "Host name or address of the broker."),
                "port": _port(1883, "TCP port of the broker (8883 is usual with TLS)."),
                "username": _string(None, "User name at the broker; null = none.",
                                    nullable=True, min_length=1),
                "password": _string(None, "Password at the broker; null = none.",
                                    nullable=True),
                "keepalive_s": _seconds(30, "MQTT keep-alive.", minimum=5),
                "tls": _section("TLS to the broker: on when ca_file or cert_file is set.", {
                    "ca_file": _string(None, "CA certificate(s) the broker's certificate is "
                                       "checked against (PEM file).", nullable=True,
                                       min_length=1),
                    "cert_file": _string(None, "Client certificate (PEM), for brokers that "
                                         "log in by certificate.", nullable=True,
                                         min_length=1),
                    "key_file": _string(None, "The client certificate's private key (PEM).",
                                        nullable=True, min_length=1),
                }),
            }),
        }),
        "update": _section("Self-update from published, signed releases (docs/update.md).", {
            "url": _string("https://api.github.com/repos/phaeton-ev/phaeton/releases",
                           "The releases index: GitHub's releases API of the project (the "
                           "default is a placeholder until the project's home is final), or "
                           "any server answering the same JSON.",
                           pattern=r"^https?://[^\s]+$", hint="an http:// or https:// URL",
                           max_length=500),
            "channel": _string("stable", "stable: releases only; beta: pre-releases too.",
                               enum=["stable", "beta"]),
            "public_key": _string("", "The release key: base64 of the raw 32-byte Ed25519 "
                                  "public key (docs/update.md); empty = no update is "
                                  "installed.", pattern=r"^([A-Za-z0-9+/]{43}=)?$",
                                  hint="empty, or 44 base64 characters ending in ="),
            "health_timeout_s": _seconds(60, "The new version must own its D-Bus name and "
                                         "answer /health within this time, else it is rolled "
                                         "back.", minimum=5, maximum=600),
            "auto": _boolean(False, "Install new releases of the channel by itself, once a "
                             "day inside the window."),
            "window": _string("03:00-05:00", "When automatic updates may run, local time "
                              "(planner.site.tz), \"HH:MM-HH:MM\" in quotes; an end before "
                              "the start crosses midnight.",
                              pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):"
                                      r"[0-5][0-9]$",
                              hint='two times "HH:MM-HH:MM", such as "03:00-05:00"'),
        }),
        "logging": _section("Logging.", {
            "level": _string("INFO", "Log level.",
                             enum=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
        }),
    },
}
