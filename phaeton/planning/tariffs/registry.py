"""The tariffs phaeton knows: the one list `planner.tariff.type` is checked against.

Each price source is one `TariffKind`: its name (the value of `planner.tariff.type` and the key
of its config section `planner.tariff.<name>`), its config section, the keys it cannot do
without (with what they are, for check-config's message), whether it fetches (then the shared
`import_formula`, `export_formula`, `refresh` and `timeout_s` apply to it and it keeps a cache)
and where its builder lives. The config schema (the `planner.tariff` section:
`tariff_schema()`, hence `docs/config.md` and the web UI's settings form), check-config's
"required when" rule, `planner.service.tariff_mapping` and `tariffs.factory` are made from this
list; nothing else names the tariffs.

The builder is named as "module:function" and imported when a tariff of that kind is built, so
loading a config imports no tariff module (nor numpy). The function takes the tariff's own keys
(a dict, `type` and the shared keys removed) and a `factory.TariffContext` and returns the
`Tariff`; `factory.construct` turns keys into a constructor call with errors that name the key.

Adding a tariff: write its module with its builder, then add its `TariffKind` here
(docs/architecture.md, "Adding a tariff").
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from phaeton import config_schema_parts as parts
from phaeton.kinds import add_kind, find_kind, load_builder

if TYPE_CHECKING:
    from phaeton.planning.tariffs.base import Tariff
    from phaeton.planning.tariffs.factory import TariffContext

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")      # a YAML key and a type value
BUILDER_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
QUARTER_HOUR_PATTERN = r"^([01][0-9]|2[0-3]):(00|15|30|45)$"
QUARTER_HOUR_END_PATTERN = r"^(([01][0-9]|2[0-3]):(00|15|30|45)|24:00)$"
# RFC 6750 b64token: what an HTTP "Authorization: Bearer" header (Tibber) and a URL query
# (ENTSO-E) carry unchanged; base64, base64url, UUIDs and JWTs all fit.
TOKEN_PATTERN = r"^[A-Za-z0-9._~+/-]+=*$"
TOKEN_HINT = "an API token of letters, digits and - . _ ~ + / = (no spaces or quotes)"
UUID_PATTERN = (r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                r"[0-9A-Fa-f]{12}$")
EIC_PATTERN = r"^[0-9]{2}[A-Z0-9-]{14}$"  # the ENTSO-E tariff's own rule
PRICE_BOUNDS = {"minimum": -10, "maximum": 10}  # beyond ±10 per kWh is a unit mistake


@dataclass(frozen=True)
class TariffKind:
    """One price source (see the module)."""
    name: str                      # planner.tariff.type value and the section's key
    section: dict[str, Any]        # JSON schema of planner.tariff.<name> (`parts.section(...)`)
    builder: str                   # "module:function": function(settings, context) -> Tariff
    fetches: bool = False          # takes the formulas, refresh and timeout; keeps a cache
    required: Mapping[str, str] = field(default_factory=dict)  # key -> what it is, in words

    def __post_init__(self):
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"a tariff's name must be lower-case letters, digits and _, "
                             f"got {self.name!r}")
        if not BUILDER_PATTERN.match(self.builder):
            raise ValueError(f"builder must be 'module:function', got {self.builder!r}")
        missing = [key for key in self.required if key not in self.section["properties"]]
        if missing:
            raise ValueError(f"{self.name}: required keys {missing} are not in its section")

    @property
    def condition_text(self) -> str:
        return f"planner.tariff.type is {self.name!r}"

    def schema_section(self) -> dict[str, Any]:
        """The section's schema, each required key marked with why it is required (the check
        itself is `phaeton.config`'s: the keys are null until the owner fills them in)."""
        properties = dict(self.section["properties"])
        for key in self.required:
            properties[key] = {**properties[key], "x-required-when": self.condition_text}
        return {**self.section, "properties": properties}

    def build(self, settings: dict[str, Any], context: TariffContext) -> Tariff:
        """The tariff for `settings`: imports the builder's module now (not before)."""
        return load_builder(self.builder)(settings, context)


TARIFF_KINDS: dict[str, TariffKind] = {}   # by name, in registration order (first = default)


def register(kind: TariffKind) -> TariffKind:
    """Add a kind; a second kind with the same name is refused."""
    return add_kind(TARIFF_KINDS, kind.name, kind, "tariff type")


def kind_named(name: Any) -> TariffKind:
    """The registered kind called `name`; ValueError naming the registered ones otherwise."""
    kind = find_kind(TARIFF_KINDS, name)
    if kind is None:
        raise ValueError(f"must be one of {list(TARIFF_KINDS)}, got {name!r}")
    return kind


def fetching_names() -> list[str]:
    """The kinds that fetch, in registration order."""
    return [kind.name for kind in TARIFF_KINDS.values() if kind.fetches]


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _price(description: str, default: float | None = None, *,
           nullable: bool = False) -> dict[str, Any]:
    return parts.number(default, description, "currency/kWh", nullable=nullable,
                        **PRICE_BOUNDS)


def tariff_schema() -> dict[str, Any]:
    """The `planner.tariff` section of the config schema: the type enum and every kind's
    section from the registry, then the keys shared by the fetching kinds."""
    fetching = fetching_names()
    shared = f"the formulas, refresh and timeout apply to {_listed(fetching)}." if fetching \
        else "the formulas, refresh and timeout apply to fetching tariffs."
    return parts.section("Where prices come from (docs/tariffs.md). Only the section named by "
                         f"type is used; {shared}", {
        "type": parts.string(next(iter(TARIFF_KINDS)), "Price source.",
                             enum=list(TARIFF_KINDS)),
        **{kind.name: kind.schema_section() for kind in TARIFF_KINDS.values()},
        **_FETCHING_SECTIONS,
    })


# ---- the keys every fetching tariff shares --------------------------------------------------

_FETCHING_SECTIONS: dict[str, Any] = {
    "import_formula": parts.section("Import price from the spot price.", {
        "factor": parts.number(1.0, "Spot price multiplier.", minimum=-100, maximum=100),
        "adder_eur_per_kwh": _price("Added to the spot price (grid fees, levies).", 0.0),
        "vat_percent": parts.number(0.0, "VAT on top.", "%", minimum=0, maximum=100),
    }),
    "export_formula": parts.section("Export price from the spot price.", {
        "factor": parts.number(0.0, "Spot price multiplier (0 = feed-in earns nothing).",
                               minimum=-100, maximum=100),
        "adder_eur_per_kwh": _price("Added to the spot price.", 0.0),
        "fixed_eur_per_kwh": _price("A fixed feed-in price instead; null = formula.",
                                    nullable=True),
    }),
    "refresh": parts.section("When fetching tariffs look for new prices.", {
        "publish_time": parts.time_of_day("13:00", "Local time tomorrow's prices are due."),
        "publish_tz": parts.zone("Europe/Berlin", "Time zone of publish_time."),
        "poll_s": parts.number(900, "Poll interval while tomorrow's prices are due.", "s",
                               minimum=60, maximum=86400),
        "backoff_base_s": parts.number(60, "First wait after a failed fetch (doubles).", "s",
                                       minimum=10, maximum=86400),
        "backoff_max_s": parts.number(3600, "Longest wait after failures (at least "
                                      "backoff_base_s).", "s", minimum=60, maximum=86400),
    }),
    "timeout_s": parts.number(20, "Timeout of one price request.", "s", minimum=1, maximum=300),
}


# ---- the tariffs --------------------------------------------------------------------------

register(TariffKind(
    name="static", builder="phaeton.planning.tariffs.static:tariff_from_section",
    section=parts.section("The same prices at all times.", {
        "import_eur_per_kwh": _price("Import price.", 0.30),
        "export_eur_per_kwh": _price("Export price.", 0.08),
    })))

_DAYS = {
    "type": "array",
    "description": "Days the window starts on (mon..sun); all days when left out.",
    "default": list(WEEKDAYS),
    "items": {"type": "string", "enum": list(WEEKDAYS)},
    "minItems": 1,
    "uniqueItems": True,
}

_TOU_WINDOW = {
    "type": "object",
    "description": "One time-of-use window: the first window that matches wins.",
    "additionalProperties": False,
    "required": ["start", "end", "import_eur_per_kwh"],
    "properties": {
        "days": _DAYS,
        "start": parts.time_of_day(None, "Start, local \"HH:MM\" (quarter hours).",
                                   pattern=QUARTER_HOUR_PATTERN,
                                   hint='a quarter hour "HH:MM" from 00:00 to 23:45 (minutes '
                                        '00, 15, 30 or 45)'),
        "end": parts.time_of_day(None, "End, local \"HH:MM\" (quarter hours); at or before the "
                                 "start runs past midnight, \"24:00\" is the end of the day.",
                                 pattern=QUARTER_HOUR_END_PATTERN,
                                 hint='a quarter hour "HH:MM" from 00:00 to 24:00 (minutes 00, '
                                      '15, 30 or 45)'),
        "import_eur_per_kwh": _price("Import price inside the window."),
        "export_eur_per_kwh": _price("Export price inside the window; null = the default "
                                     "export price.", nullable=True),
    },
}

register(TariffKind(
    name="time_of_use", builder="phaeton.planning.tariffs.time_of_use:tariff_from_section",
    section=parts.section("Prices by weekday and local time.", {
        "tz": parts.zone("Europe/Berlin", "Time zone the windows are in (IANA name)."),
        "default_import_eur_per_kwh": _price("Import price outside all windows.", 0.30),
        "default_export_eur_per_kwh": _price("Export price outside all windows.", 0.08),
        "windows": {"type": "array", "description": "Windows with their own prices.",
                    "default": [], "items": _TOU_WINDOW, "maxItems": 100},
    })))

register(TariffKind(
    name="tibber", builder="phaeton.planning.tariffs.tibber:tariff_from_section", fetches=True,
    required={"token": "the API token from developer.tibber.com"},
    section=parts.section("Tibber GraphQL API.", {
        "token": parts.string(None, "Tibber API token (required for type tibber).",
                              nullable=True, min_length=1, pattern=TOKEN_PATTERN,
                              hint=TOKEN_HINT, max_length=1024),
        "home_id": parts.string(None, "Home id; null = the first home with a subscription.",
                                nullable=True, min_length=1, pattern=UUID_PATTERN,
                                hint="a Tibber home id such as "
                                     "96a14971-525a-4420-aae9-e5aedaa129ff (a UUID)"),
        "resolution": parts.string("HOURLY", "HOURLY or QUARTER_HOURLY prices.",
                                   enum=["HOURLY", "QUARTER_HOURLY"]),
    })))

register(TariffKind(
    name="entsoe", builder="phaeton.planning.tariffs.entsoe:tariff_from_section", fetches=True,
    required={"token": "the API token of the ENTSO-E Transparency Platform"},
    section=parts.section("ENTSO-E Transparency day-ahead prices.", {
        "token": parts.string(None, "ENTSO-E API token (required for type entsoe).",
                              nullable=True, min_length=1, pattern=TOKEN_PATTERN,
                              hint=TOKEN_HINT, max_length=1024),
        "area": parts.string("10Y1001A1001A82H", "Bidding zone EIC code (DE-LU by default).",
                             min_length=1, pattern=EIC_PATTERN,
                             hint='a 16-character EIC code of a bidding zone such as '
                                  '"10Y1001A1001A82H" (DE-LU)'),
    })))

register(TariffKind(
    name="file", builder="phaeton.planning.tariffs.file:tariff_from_section", fetches=True,
    required={"location": "the price file's path or URL"},
    section=parts.section("A CSV or JSON price file or http(s) URL.", {
        "location": parts.formatted(parts.string(None, "Path or URL of the price file "
                                                 "(required for type file).", nullable=True,
                                                 min_length=1, max_length=2048), "location"),
        "format": parts.string("auto", "csv, json or auto (from the name).",
                               enum=["auto", "csv", "json"]),
    })))
