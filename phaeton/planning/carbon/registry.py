"""The carbon intensity sources phaeton knows: the one list `carbon.source` is checked against.

Each source is one `CarbonKind`: its name (the value of `carbon.source` and the key of its
section `carbon.<name>`), its config section (built with `phaeton/config_schema_parts.py`), the
keys it cannot do without (with what they are), whether it fetches (then the shared `refresh`
and `timeout_s` apply and it keeps a cache `<data_dir>/carbon-<name>.json`) and its builder as
"module:function". The config schema's `carbon` section (`carbon_schema()`: the source enum,
the sections, the shared keys and the "required when" rules) and the factory
(`carbon.factory.carbon_from_config`) are made from this list; nothing else names a source.

The builder is imported only when a source of its kind is built, so loading a config imports
no source module (nor numpy). It takes the source's own keys (a dict, null keys left out) and a
`factory.CarbonContext` and returns the `CarbonSource`.

`source: none` (the default) is not a kind: no carbon intensity, phaeton as before.

Adding a source: write its module with its builder, then add its `CarbonKind` here
(docs/carbon.md, "Adding a source").
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from phaeton import config_schema_parts as parts
from phaeton.kinds import add_kind, find_kind, load_builder
from phaeton.planning.carbon.countries import COUNTRY_G_PER_KWH, COUNTRY_YEAR

if TYPE_CHECKING:
    from phaeton.planning.carbon.base import CarbonSource
    from phaeton.planning.carbon.factory import CarbonContext

NONE = "none"                                         # carbon.source: no intensity at all
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
BUILDER_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
RESERVED = {NONE, "source", "refresh", "timeout_s"}   # keys of the carbon section itself

TOKEN_PATTERN = r"^[A-Za-z0-9._~+/-]+=*$"
TOKEN_HINT = "an API token of letters, digits and - . _ ~ + / = (no spaces or quotes)"
EIC_PATTERN = r"^[0-9]{2}[A-Z0-9-]{14}$"
INTENSITY_BOUNDS = {"minimum": 0, "maximum": 2000}    # series.MAX_G_PER_KWH


@dataclass(frozen=True)
class CarbonKind:
    """One carbon intensity source (see the module)."""
    name: str                      # carbon.source value and the section's key
    section: dict[str, Any]        # JSON schema of carbon.<name> (`parts.section(...)`)
    builder: str                   # "module:function": function(settings, context) -> source
    fetches: bool = False          # takes refresh and timeout_s; keeps a cache
    required: Mapping[str, str] = field(default_factory=dict)  # key -> what it is, in words
    rules: tuple[dict[str, Any], ...] = ()  # more if/then rules of the carbon section

    def __post_init__(self):
        if not NAME_PATTERN.match(self.name) or self.name in RESERVED:
            raise ValueError(f"a carbon source's name must be lower-case letters, digits and _ "
                             f"and not one of {sorted(RESERVED)}, got {self.name!r}")
        if not BUILDER_PATTERN.match(self.builder):
            raise ValueError(f"builder must be 'module:function', got {self.builder!r}")
        missing = [key for key in self.required if key not in self.section["properties"]]
        if missing:
            raise ValueError(f"{self.name}: required keys {missing} are not in its section")

    @property
    def condition_text(self) -> str:
        return f"carbon.source is {self.name!r}"

    def schema_section(self) -> dict[str, Any]:
        """The section's schema, each required key marked with why it is required."""
        properties = dict(self.section["properties"])
        for key, what in self.required.items():
            properties[key] = {**properties[key],
                               "x-required-when": f"{self.condition_text} ({what})"}
        return {**self.section, "properties": properties}

    def schema_rules(self) -> list[dict[str, Any]]:
        """The kind's `if`/`then` rules: its own `rules`, and one that refuses a required key
        left null when carbon.source names this kind (the keys default to null until the
        owner fills them in)."""
        if not self.required:
            return list(self.rules)
        keys = {}
        for key in self.required:
            kinds = self.section["properties"][key].get("type")
            kinds = [k for k in (kinds if isinstance(kinds, list) else [kinds]) if k != "null"]
            keys[key] = {"type": kinds[0] if len(kinds) == 1 else kinds}
        return [{"if": {"properties": {"source": {"const": self.name}}},
                 "then": {"properties": {self.name: {"properties": keys}}}}, *self.rules]

    def build(self, settings: dict[str, Any], context: CarbonContext) -> CarbonSource:
        """The source for `settings`: imports the builder's module now (not before)."""
        return load_builder(self.builder)(settings, context)


CARBON_KINDS: dict[str, CarbonKind] = {}   # by name, in registration order


def register(kind: CarbonKind) -> CarbonKind:
    """Add a kind; a second kind with the same name is refused."""
    return add_kind(CARBON_KINDS, kind.name, kind, "carbon source")


def kind_named(name: Any) -> CarbonKind:
    """The registered kind called `name`; ValueError naming the registered ones otherwise."""
    kind = find_kind(CARBON_KINDS, name)
    if kind is None:
        raise ValueError(f"must be one of {[NONE, *CARBON_KINDS]}, got {name!r}")
    return kind


def source_names() -> list[str]:
    """The values `carbon.source` may take: none, then the registered kinds."""
    return [NONE, *CARBON_KINDS]


def fetching_names() -> list[str]:
    return [kind.name for kind in CARBON_KINDS.values() if kind.fetches]


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def carbon_schema() -> dict[str, Any]:
    """The top-level `carbon` section of the config schema: the source enum and every kind's
    section from the registry, the keys the fetching kinds share, and one rule per kind with
    required keys."""
    fetching = fetching_names()
    rules = [rule for kind in CARBON_KINDS.values() for rule in kind.schema_rules()]
    shared = (f"refresh and timeout apply to {_listed(fetching)}." if fetching
              else "refresh and timeout apply to fetching sources.")
    return parts.section(
        "Carbon intensity of grid electricity, g CO2-eq per kWh (docs/carbon.md). none = not "
        f"used. Only the section named by source is used; {shared}", {
            "source": parts.string(NONE, "Where carbon intensities come from (none = no "
                                   "carbon accounting).", enum=source_names()),
            **{kind.name: kind.schema_section() for kind in CARBON_KINDS.values()},
            "refresh": parts.section("When fetching sources fetch again.", {
                "interval_s": parts.number(1800, "Wait after a good fetch.", "s", minimum=300,
                                           maximum=86400),
                "backoff_base_s": parts.number(60, "First wait after a failed fetch "
                                               "(doubles with every further failure).", "s",
                                               minimum=10, maximum=3600),
                "backoff_max_s": parts.number(3600, "Longest wait after failures.", "s",
                                              minimum=3600, maximum=86400),
            }),
            "timeout_s": parts.number(20, "Timeout of one request.", "s", minimum=1,
                                      maximum=300),
        }, **({"allOf": rules} if rules else {}))


# ---- the sources ----------------------------------------------------------------------------

def _token(where: str) -> dict[str, Any]:
    return parts.string(None, f"API token (required for source {where}).", nullable=True,
                        min_length=1, pattern=TOKEN_PATTERN, hint=TOKEN_HINT, max_length=1024)


register(CarbonKind(
    name="static", builder="phaeton.planning.carbon.static:source_from_section",
    section=parts.section("One fixed intensity: a country's yearly average or a number.", {
        "country": parts.string(None, f"Country whose {COUNTRY_YEAR} average to use (table in "
                                "docs/carbon.md); needed unless g_per_kwh is set.",
                                nullable=True, enum=sorted(COUNTRY_G_PER_KWH)),
        "g_per_kwh": parts.number(None, "A fixed intensity instead of the country's (wins "
                                  "over country).", "g/kWh", nullable=True,
                                  **INTENSITY_BOUNDS),
    }),
    # with no number, the country is required
    rules=({"if": {"properties": {"source": {"const": "static"},
                                  "static": {"properties": {"g_per_kwh": {"type": "null"}}}}},
            "then": {"properties": {"static": {"properties": {"country": {"type": "string"}}}}}},
           )))

register(CarbonKind(
    name="uk_carbon_intensity", fetches=True,
    builder="phaeton.planning.carbon.uk_carbon_intensity:source_from_section",
    section=parts.section("GB Carbon Intensity API (api.carbonintensity.org.uk, no token): "
                          "half-hour actuals and a 48 h forecast.", {
        "region_id": parts.number(None, "Region 1..17 (13 = London, docs/carbon.md); null = "
                                  "national.", integer=True, minimum=1, maximum=17,
                                  nullable=True),
    })))

register(CarbonKind(
    name="entsoe_generation", fetches=True,
    builder="phaeton.planning.carbon.entsoe_generation:source_from_section",
    required={"token": "the API token of the ENTSO-E Transparency Platform"},
    section=parts.section("ENTSO-E actual generation per production type, weighted with "
                          "lifecycle factors (history only, no forecast).", {
        "token": _token("entsoe_generation"),
        "area": parts.string("10Y1001A1001A82H", "Bidding zone or control area EIC code "
                             "(DE-LU by default).", min_length=1, pattern=EIC_PATTERN,
                             hint='a 16-character EIC code such as "10Y1001A1001A82H" '
                                  '(DE-LU)'),
    })))

register(CarbonKind(
    name="electricity_maps", fetches=True,
    builder="phaeton.planning.carbon.electricity_maps:source_from_section",
    required={"token": "the API token of Electricity Maps"},
    section=parts.section("Electricity Maps API: latest, past 24 h and forecast.", {
        "token": _token("electricity_maps"),
        "zone": parts.string("DE", "Electricity Maps zone such as DE, FR or GB.",
                             min_length=1, max_length=32, pattern=r"^[A-Z]{2}(-[A-Z0-9-]+)?$",
                             hint='a zone such as "DE", "GB" or "US-CAL-CISO"'),
        "forecast": parts.boolean(True, "Fetch the forecast too (the free tier has none: "
                                  "set false)."),
    })))

register(CarbonKind(
    name="file", fetches=True, builder="phaeton.planning.carbon.file:source_from_section",
    required={"location": "the intensity file's path or URL"},
    section=parts.section("A CSV or JSON intensity file or http(s) URL.", {
        "location": parts.formatted(parts.string(None, "Path or URL of the file (required "
                                                 "for source file).", nullable=True,
                                                 min_length=1, max_length=2048), "location"),
        "format": parts.string("auto", "csv, json or auto (from the name).",
                               enum=["auto", "csv", "json"]),
    })))
