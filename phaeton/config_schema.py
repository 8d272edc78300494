"""The one JSON Schema (draft 2020-12) of phaeton's config.yaml.

It serves three purposes at once:
- validation (`phaeton.config` runs it with `phaeton.config_validate`, a checker for exactly
  the keywords used here),
- the documented defaults (every key has a `default`, except the charger address, which is
  required depending on `charger.protocol` through `if`/`then`),
- the web UI's settings form (`description`, `type`, bounds and `enum` of every key).

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

SCHEMA_ID = "urn:phaeton:config"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
TIME_HINT = 'a time "HH:MM" from 00:00 to 23:59'
QUARTER_HOUR_PATTERN = r"^([01][0-9]|2[0-3]):(00|15|30|45)$"
QUARTER_HOUR_END_PATTERN = r"^(([01][0-9]|2[0-3]):(00|15|30|45)|24:00)$"
# RFC 6750 b64token: what an HTTP "Authorization: Bearer" header (Tibber) and a URL query
# (ENTSO-E) carry unchanged; base64, base64url, UUIDs and JWTs all fit.
TOKEN_PATTERN = r"^[A-Za-z0-9._~+/-]+=*$"
TOKEN_HINT = "an API token of letters, digits and - . _ ~ + / = (no spaces or quotes)"
UUID_PATTERN = (r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                r"[0-9A-Fa-f]{12}$")
EIC_PATTERN = r"^[0-9]{2}[A-Z0-9-]{14}$"  # the ENTSO-E tariff's own rule
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f]*$"

FORMAT_HINTS = {
    "timezone": 'an IANA time zone name this system knows, such as "Europe/Berlin" or "UTC"',
    "host": "a host name or IP address (letters, digits, hyphens and dots) without a port",
    "location": "an absolute file path (starting with /) or an http:// or https:// URL",
    "password-hash": "a hash made by the web UI (scrypt$N$r$p$salt$hash)",
}


def _number(default: float, description: str, unit: str | None = None, *,
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


def _seconds(default: float, description: str, *, minimum: float = 0,
             maximum: float = 3600) -> dict[str, Any]:
    return _number(default, description, "s", minimum=minimum, maximum=maximum)


def _formatted(schema: dict[str, Any], fmt: str) -> dict[str, Any]:
    """`schema` of a string a later stage parses: checked by `phaeton.config` (see the top)."""
    return {**schema, "x-format": fmt, "x-format-hint": FORMAT_HINTS[fmt]}


def _zone(default: str, description: str) -> dict[str, Any]:
    return _formatted(_string(default, description, min_length=1, max_length=64), "timezone")


def _host(default: str | None, description: str) -> dict[str, Any]:
    return _formatted(_string(default, description, min_length=1, max_length=253), "host")


def _time(default: str | None, description: str, *, pattern: str = TIME_PATTERN,
          hint: str = TIME_HINT) -> dict[str, Any]:
    return {**_string(default, description, pattern=pattern, hint=hint), "x-time": True}


def _port(default: int, description: str) -> dict[str, Any]:
    return _number(default, description, integer=True, minimum=1, maximum=65535)


def _boolean(default: bool, description: str) -> dict[str, Any]:
    return {"type": "boolean", "default": default, "description": description}


def _string(default: str | None, description: str, *, pattern: str | None = None,
            hint: str | None = None, min_length: int | None = None,
            max_length: int | None = None, nullable: bool = False,
            enum: list[str] | None = None) -> dict[str, Any]:
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


def _section(description: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A mapping of known keys; unknown keys are errors (typos are caught)."""
    return {
        "type": "object",
        "description": description,
        "default": {},
        "additionalProperties": False,
        "properties": properties,
        **extra,
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

_ALFEN = _section("Alfen NG9xx over Modbus TCP (used when charger.protocol is alfen).", {
    "host": {
        **_host(None, "IP address or host name of the Alfen charger. Required when "
                "charger.protocol is alfen."),
        "x-required-when": "charger.protocol is 'alfen'",
    },
    "port": _port(502, "Modbus TCP port of the charger."),
    "station_unit_id": _number(200, "Modbus unit id of the station registers (Alfen: 200).",
                               integer=True, minimum=1, maximum=255),
    "socket_unit_id": _number(1, "Modbus unit id of the socket (1, or 2 for the second "
                              "socket of a double station).", integer=True, minimum=1,
                              maximum=255),
    "timeout_s": _number(3, "Timeout of one Modbus request.", "s", minimum=0.1, maximum=60),
    "setpoint_refresh_s": _number(20, "Rewrite the current setpoint at least this often; the "
                                  "charger falls back to its safe current when it is not "
                                  "rewritten within its validity time (60 s).", "s",
                                  minimum=1, maximum=25),
    "reconnect_max_s": _number(5, "While the charger is unreachable, try to connect at least "
                               "this often (attempts start 1 s apart and back off to this); a "
                               "charger that answers again gets its setpoint within about this "
                               "time. The log backs off on its own: one warning, then rare "
                               "reminders.", "s", minimum=1, maximum=300),
})

_OCPP = _section("OCPP 1.6J central system (used when charger.protocol is ocpp). The charger "
                 "connects to ws://<GX address>:<port><path>/<charge_point_id>.", {
    "host": _host("0.0.0.0", "Address the OCPP WebSocket server listens on (0.0.0.0 = all "
                  "IPv4 addresses)."),
    "port": _port(8887, "TCP port the OCPP WebSocket server listens on."),
    "path": _string("/ocpp", "URL path in front of the charge point id.",
                    pattern=r"^/[A-Za-z0-9._~/-]*$",
                    hint='a URL path starting with "/" (letters, digits, . _ ~ - /)'),
    "charge_point_id": {
        **_string(None, "The charge point id the charger is configured with. Required when "
                  "charger.protocol is ocpp.", pattern=r"^[^\s/]+$",
                  hint="an id without spaces or slashes", min_length=1, max_length=48),
        "x-required-when": "charger.protocol is 'ocpp'",
    },
    "connector_id": _number(1, "Connector of the charge point to control.", integer=True,
                            minimum=1, maximum=10),
    "password": _string(None, "HTTP Basic auth password (security profile 1); null = no "
                        "authentication.", nullable=True, min_length=1, max_length=64),
    "meter_interval_s": _number(10, "Meter value sample interval asked of the charger.", "s",
                                integer=True, minimum=1, maximum=3600),
    "heartbeat_interval_s": _number(60, "Heartbeat interval given to the charger.", "s",
                                    integer=True, minimum=10, maximum=86400),
})

_PRICE = {"minimum": -10, "maximum": 10}  # beyond ±10 per kWh is a unit mistake

_TOU_WINDOW = {
    "type": "object",
    "description": "One time-of-use window: the first window that matches wins.",
    "additionalProperties": False,
    "required": ["start", "end", "import_eur_per_kwh"],
    "properties": {
        "days": _SCHEDULE_WINDOW["properties"]["days"],
        "start": _time(None, "Start, local \"HH:MM\" (quarter hours).",
                       pattern=QUARTER_HOUR_PATTERN,
                       hint='a quarter hour "HH:MM" from 00:00 to 23:45 (minutes 00, 15, 30 '
                            'or 45)'),
        "end": _time(None, "End, local \"HH:MM\" (quarter hours); at or before the start runs "
                     "past midnight, \"24:00\" is the end of the day.",
                     pattern=QUARTER_HOUR_END_PATTERN,
                     hint='a quarter hour "HH:MM" from 00:00 to 24:00 (minutes 00, 15, 30 '
                          'or 45)'),
        "import_eur_per_kwh": _number(None, "Import price inside the window.", "currency/kWh",
                                      **_PRICE),
        "export_eur_per_kwh": _number(None, "Export price inside the window; null = the "
                                      "default export price.", "currency/kWh",
                                      nullable=True, **_PRICE),
    },
}

_TARIFF = _section("Where prices come from (docs/tariffs.md). Only the section named by type "
                   "is used; the formulas, refresh and timeout apply to tibber, entsoe and "
                   "file.", {
    "type": _string("static", "Price source.",
                    enum=["static", "time_of_use", "tibber", "entsoe", "file"]),
    "static": _section("The same prices at all times.", {
        "import_eur_per_kwh": _number(0.30, "Import price.", "currency/kWh", **_PRICE),
        "export_eur_per_kwh": _number(0.08, "Export price.", "currency/kWh", **_PRICE),
    }),
    "time_of_use": _section("Prices by weekday and local time.", {
        "tz": _zone("Europe/Berlin", "Time zone the windows are in (IANA name)."),
        "default_import_eur_per_kwh": _number(0.30, "Import price outside all windows.",
                                              "currency/kWh", **_PRICE),
        "default_export_eur_per_kwh": _number(0.08, "Export price outside all windows.",
                                              "currency/kWh", **_PRICE),
        "windows": {"type": "array", "description": "Windows with their own prices.",
                    "default": [], "items": _TOU_WINDOW, "maxItems": 100},
    }),
    "tibber": _section("Tibber GraphQL API.", {
        "token": {**_string(None, "Tibber API token (required for type tibber).",
                            nullable=True, min_length=1, pattern=TOKEN_PATTERN,
                            hint=TOKEN_HINT, max_length=1024),
                  "x-required-when": "planner.tariff.type is 'tibber'"},
        "home_id": _string(None, "Home id; null = the first home with a subscription.",
                           nullable=True, min_length=1, pattern=UUID_PATTERN,
                           hint="a Tibber home id such as "
                                "96a14971-525a-4420-aae9-e5aedaa129ff (a UUID)"),
        "resolution": _string("HOURLY", "HOURLY or QUARTER_HOURLY prices.",
                              enum=["HOURLY", "QUARTER_HOURLY"]),
    }),
    "entsoe": _section("ENTSO-E Transparency day-ahead prices.", {
        "token": {**_string(None, "ENTSO-E API token (required for type entsoe).",
                            nullable=True, min_length=1, pattern=TOKEN_PATTERN,
                            hint=TOKEN_HINT, max_length=1024),
                  "x-required-when": "planner.tariff.type is 'entsoe'"},
        "area": _string("10Y1001A1001A82H", "Bidding zone EIC code (DE-LU by default).",
                        min_length=1, pattern=EIC_PATTERN,
                        hint='a 16-character EIC code of a bidding zone such as '
                             '"10Y1001A1001A82H" (DE-LU)'),
    }),
    "file": _section("A CSV or JSON price file or http(s) URL.", {
        "location": {**_formatted(_string(None, "Path or URL of the price file (required for "
                                          "type file).", nullable=True, min_length=1,
                                          max_length=2048), "location"),
                     "x-required-when": "planner.tariff.type is 'file'"},
        "format": _string("auto", "csv, json or auto (from the name).",
                          enum=["auto", "csv", "json"]),
    }),
    "import_formula": _section("Import price from the spot price.", {
        "factor": _number(1.0, "Spot price multiplier.", minimum=-100, maximum=100),
        "adder_eur_per_kwh": _number(0.0, "Added to the spot price (grid fees, levies).",
                                     "currency/kWh", **_PRICE),
        "vat_percent": _number(0.0, "VAT on top.", "%", minimum=0, maximum=100),
    }),
    "export_formula": _section("Export price from the spot price.", {
        "factor": _number(0.0, "Spot price multiplier (0 = feed-in earns nothing).",
                          minimum=-100, maximum=100),
        "adder_eur_per_kwh": _number(0.0, "Added to the spot price.", "currency/kWh",
                                     **_PRICE),
        "fixed_eur_per_kwh": _number(None, "A fixed feed-in price instead; null = formula.",
                                     "currency/kWh", nullable=True, **_PRICE),
    }),
    "refresh": _section("When fetching tariffs look for new prices.", {
        "publish_time": _time("13:00", "Local time tomorrow's prices are due."),
        "publish_tz": _zone("Europe/Berlin", "Time zone of publish_time."),
        "poll_s": _number(900, "Poll interval while tomorrow's prices are due.", "s",
                          minimum=60, maximum=86400),
        "backoff_base_s": _number(60, "First wait after a failed fetch (doubles).", "s",
                                  minimum=10, maximum=86400),
        "backoff_max_s": _number(3600, "Longest wait after failures (at least "
                                 "backoff_base_s).", "s", minimum=60, maximum=86400),
    }),
    "timeout_s": _number(20, "Timeout of one price request.", "s", minimum=1, maximum=300),
})


_PLANNER = _section("The energy planner: prices, forecasts, the 24-48 h plan for the EV and the "
                    "home battery, and how the battery is steered (phaeton plan prints it).", {
    "strategy": _string("optimise", "Default battery strategy (the GX setting "
                        "/Settings/Phaeton/Planner/Strategy overrides it): off, "
                        "self_consumption or optimise. Quote \"off\" in YAML (a bare off "
                        "reads as false).",
                        enum=["off", "self_consumption", "optimise"]),
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
    "tariff": _TARIFF,
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
        "charger": _section("The EV charger.", {
            "protocol": _string("alfen", "How the charger is driven: alfen (Modbus TCP) or "
                                "ocpp (OCPP 1.6J).", enum=["alfen", "ocpp"]),
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
            "alfen": _ALFEN,
            "ocpp": _OCPP,
        }, allOf=[
            {"if": {"properties": {"protocol": {"const": "alfen"}}},
             "then": {"required": ["alfen"], "properties": {"alfen": {"required": ["host"]}}}},
            {"if": {"properties": {"protocol": {"const": "ocpp"}}},
             "then": {"required": ["ocpp"],
                      "properties": {"ocpp": {"required": ["charge_point_id"]}}}},
        ]),
        "control": _section("The control loop.", {
            "tick_s": _number(2, "Charger control tick.", "s", minimum=0.25, maximum=60),
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
                None, "Hash of the web UI password (set from the web UI); null = no password.",
                nullable=True, min_length=1, max_length=1024), "password-hash"),
        }),
        "planner": _PLANNER,
        "logging": _section("Logging.", {
            "level": _string("INFO", "Log level.",
                             enum=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
        }),
    },
}
