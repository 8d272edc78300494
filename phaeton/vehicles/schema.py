"""The `vehicles` list of config.yaml: each car, where its SoC comes from and which charger it
uses (docs/vehicles.md). Part of the one config schema (`phaeton.config_schema`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phaeton.config_schema_parts import boolean, host, number, port, seconds, section, string

SOURCES = ["manual", "ocpp", "mqtt", "http", "tesla"]
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,32}$"
NAME_HINT = "1 to 32 letters, digits, _ . or -"
_FIELD_PATTERN = r"^[A-Za-z0-9_@$-]*(\.[A-Za-z0-9_@$-]+)*$"
_FIELD_HINT = "a dotted path such as charge_state.battery_level, or empty"


def _field(default: str, description: str) -> dict[str, Any]:
    return string(default, description, pattern=_FIELD_PATTERN, hint=_FIELD_HINT, max_length=200)


_MQTT = section("The SoC from an MQTT topic (TeslaMate, Home Assistant, evcc, any publisher).", {
    "host": host("127.0.0.1", "The broker's host name or address."),
    "port": port(1883, "The broker's TCP port."),
    "topic": string("", "The topic, e.g. teslamate/cars/1/battery_level.", max_length=256),
    "field": _field("", "Where the SoC is in a JSON payload; empty: the payload is the number."),
    "range_field": _field("", "Where the range (km) is in the JSON payload; empty: none."),
    "time_field": _field("", "Where the reading's time (epoch s or ms, or ISO 8601) is; "
                         "empty: the time it arrived."),
    "username": string(None, "User name at the broker; null = none.", nullable=True),
    "password": string(None, "Password at the broker; null = none.", nullable=True),
    "tls": boolean(False, "TLS to the broker (checked against ca_file or the system's CAs)."),
    "ca_file": string(None, "CA certificate file (PEM) for TLS; null = the system's.",
                      nullable=True, min_length=1),
})

_HTTP = section("The SoC from an HTTP URL answering JSON (Home Assistant's REST API, a bridge).", {
    "url": string("", "The URL (http:// or https://).", pattern=r"^(https?://\S+)?$",
                  hint="an http:// or https:// URL", max_length=1000),
    "field": _field("", "Where the SoC is in the answer, e.g. state."),
    "range_field": _field("", "Where the range (km) is; empty: none."),
    "time_field": _field("", "Where the reading's time is (epoch s or ms, or ISO 8601, e.g. "
                         "last_updated); empty: the time of the answer."),
    "bearer_token": string(None, "Sent as Authorization: Bearer (Home Assistant's long-lived "
                           "token); null = none.", nullable=True, max_length=2000),
    "interval_s": seconds(300, "How often to ask.", minimum=30, maximum=86400),
    "timeout_s": seconds(10, "How long an answer may take.", minimum=1, maximum=120),
})

_TESLA = section("The SoC from Tesla's Fleet API (docs/vehicles.md: registering an app).", {
    "vin": string("", "The car's VIN.", pattern=r"^([A-HJ-NPR-Z0-9]{17})?$",
                  hint="17 letters and digits (no I, O or Q)"),
    "client_id": string("", "Your Tesla developer app's client id.", max_length=200),
    "client_secret": string(None, "The app's client secret, if it has one; null = none.",
                            nullable=True, max_length=500),
    "refresh_token": string("", "The refresh token from authorising the app once; phaeton "
                            "keeps the rotated ones in the data dir.", max_length=4000),
    "api_url": string("https://fleet-api.prd.eu.vn.cloud.tesla.com", "The Fleet API of your "
                      "region (https; http only to a server on this machine).", pattern=r"^https?://\S+$", hint="an http(s):// URL"),
    "auth_url": string("https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token",
                       "Tesla's token endpoint.", pattern=r"^https?://\S+$",
                       hint="an http(s):// URL"),
    "interval_s": seconds(600, "How often to ask an awake car (Tesla bills every request "
                          "and asks not to poll vehicle_data often).", minimum=300,
                          maximum=86400),
    "wake": boolean(False, "Wake a sleeping car to read its SoC (costs the car's battery and "
                    "API credit); off: a sleeping car keeps its last reading."),
    "wake_interval_s": seconds(21600, "Wake it at most this often (a wake costs about 10 "
                               "data requests).", minimum=3600, maximum=7 * 86400),
})

_VEHICLE = {
    "type": "object",
    "description": "A car: where its SoC comes from and where it charges.",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": string(None, "The car's name (the UI and D-Bus show it).", pattern=NAME_PATTERN,
                       hint=NAME_HINT),
        "capacity_kwh": number(0, "Usable battery capacity; 0 = the charger's or "
                               "planner.ev.capacity_kwh.", "kWh", minimum=0, maximum=300),
        "charger": string("", "The charger id it usually charges at (chargers[].id; with one "
                          "charger leave it empty). An idTag match wins over this.",
                          max_length=32),
        "id_tags": {"type": "array", "description": "RFID cards or OCPP idTags that mean this "
                    "car (an OCPP charger's transaction tells which car is plugged in).",
                    "default": [], "items": string(None, "An idTag.", min_length=1,
                                                   max_length=20),
                    "maxItems": 16, "uniqueItems": True},
        "stale_after_s": seconds(3600, "A reading older than this is shown as stale and not "
                                 "planned with.", minimum=60, maximum=7 * 86400),
        "soc": section("Where the car's SoC comes from.", {
            "source": string("manual", "manual (the web UI or /Vehicle/ManualSoc on D-Bus), "
                             "ocpp (the charger's SoC measurand), mqtt, http or tesla.",
                             enum=SOURCES),
            "mqtt": _MQTT,
            "http": _HTTP,
            "tesla": _TESLA,
        }),
    },
}


def vehicles_schema() -> dict[str, Any]:
    return {
        "type": "array",
        "description": "The household's cars and where their state of charge comes from "
                       "(docs/vehicles.md); empty: the charger's own SoC when it sends one "
                       "(OCPP), else planner.ev.assumed_soc_pct.",
        "default": [],
        "items": _VEHICLE,
        "maxItems": 16,
    }


def vehicle_problems(get, usable) -> list[tuple[tuple, str]]:
    """Rules the schema cannot state (`phaeton.config.cross_field_problems`): names unique, a
    source's own keys, a charger that exists. [(key path, message)]."""
    found: list[tuple[tuple, str]] = []
    cars = get(("vehicles",))
    if not isinstance(cars, list):
        return found
    entries = get(("chargers",))
    chargers = {str(e.get("id")) for e in entries if isinstance(e, Mapping)} \
        if isinstance(entries, list) and entries else {str(get(("device", "unique_id")))}
    seen: set[str] = set()
    for index, car in enumerate(cars):
        base = ("vehicles", index)
        if not isinstance(car, Mapping) or not usable(base):
            continue
        name = car.get("name")
        if isinstance(name, str) and name in seen:
            found.append((base + ("name",), f"{name!r} is already the name of another car"))
        seen.add(name)
        charger = car.get("charger") or ""
        if usable(base + ("charger",)) and charger and charger not in chargers:
            found.append((base + ("charger",), f"no charger has the id {charger!r} (there "
                                               f"are: {', '.join(sorted(chargers))})"))
        source = get(base + ("soc", "source"))
        needed = {"mqtt": ("topic",), "http": ("url",),
                  "tesla": ("vin", "client_id", "refresh_token")}.get(source, ())
        for key in needed:
            path = base + ("soc", source, key)
            if usable(path) and not get(path):
                found.append((path, f"is required when soc.source is {source!r}"))
    return found
