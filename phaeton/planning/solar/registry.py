"""The PV forecast sources phaeton knows: the one list `planner.pv_forecast.source` is checked
against.

Each source is one `PvSourceKind`: its name (the value of `source` and the key of its section
`planner.pv_forecast.<name>`), its config section (built with `phaeton/config_schema_parts.py`),
the keys it cannot do without (with what they are) and its builder as "module:function",
imported only when a source of that kind is built (loading a config imports no source, nor
numpy). The schema's `planner.pv_forecast` section (`pv_forecast_schema()`) and the factory are
made from this list. `source: learned` (the default) is not a kind: the offline model alone.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from phaeton import config_schema_parts as parts
from phaeton.kinds import add_kind, find_kind, load_builder

LEARNED = "learned"          # planner.pv_forecast.source: the offline model only
KEY_HINT = "an API key of letters and digits"


@dataclass(frozen=True)
class PvSourceKind:
    """One PV forecast source (see the module)."""
    name: str                      # planner.pv_forecast.source value and the section's key
    section: dict[str, Any]        # JSON schema of planner.pv_forecast.<name>
    builder: str                   # "module:function": function(settings, context) -> source
    required: Mapping[str, str] = field(default_factory=dict)  # key -> what it is, in words
    rules: tuple[dict[str, Any], ...] = ()   # more if/then rules of planner.pv_forecast

    def schema_section(self) -> dict[str, Any]:
        """The section, each required key marked with why it is required."""
        properties = dict(self.section["properties"])
        for key, what in self.required.items():
            properties[key] = {**properties[key], "x-required-when":
                               f"planner.pv_forecast.source is {self.name!r} ({what})"}
        return {**self.section, "properties": properties}

    def schema_rules(self) -> list[dict[str, Any]]:
        """Its own `rules`, and one that refuses a required key left null when `source` names
        this kind."""
        if not self.required:
            return list(self.rules)
        keys = {}
        for key in self.required:
            kinds = [kind for kind in self.section["properties"][key]["type"] if kind != "null"]
            keys[key] = {"type": kinds[0]}
        return [{"if": {"properties": {"source": {"const": self.name}}},
                 "then": {"properties": {self.name: {"properties": keys}}}}, *self.rules]

    def build(self, settings: dict[str, Any], context: Any):
        return load_builder(self.builder)(settings, context)


PV_SOURCE_KINDS: dict[str, PvSourceKind] = {}


def register(kind: PvSourceKind) -> PvSourceKind:
    return add_kind(PV_SOURCE_KINDS, kind.name, kind, "PV forecast source")


def kind_named(name: Any) -> PvSourceKind:
    kind = find_kind(PV_SOURCE_KINDS, name)
    if kind is None:
        raise ValueError(f"must be one of {[LEARNED, *PV_SOURCE_KINDS]}, got {name!r}")
    return kind


def _url(default: str, who: str) -> dict[str, Any]:
    return parts.formatted(parts.string(default, f"Base URL of {who} (another only for a "
                                        "mirror, a self-hosted server or a test).",
                                        min_length=1, max_length=2048), "location")


def _interval(default: float | None, what: str) -> dict[str, Any]:
    return parts.number(default, f"Wait after a fetch{what}.", "s", minimum=900,
                        maximum=86400, nullable=default is None)


def pv_forecast_schema() -> dict[str, Any]:
    """The `planner.pv_forecast` section: the source enum, every kind's section and the
    request timeout."""
    rules = [rule for kind in PV_SOURCE_KINDS.values() for rule in kind.schema_rules()]
    return parts.section(
        "Where the PV forecast comes from (docs/tariffs.md, PV forecast sources). learned = "
        "the model learned offline from this site's PV meter; a weather service's forecast "
        "is calibrated on the same meter and used where it has values, the learned one "
        "elsewhere and whenever the service cannot be reached.", {
            "source": parts.string(LEARNED, "The PV forecast's source.",
                                   enum=[LEARNED, *PV_SOURCE_KINDS]),
            **{kind.name: kind.schema_section() for kind in PV_SOURCE_KINDS.values()},
            "timeout_s": parts.number(20, "Timeout of one request.", "s", minimum=1,
                                      maximum=300),
        }, **({"allOf": rules} if rules else {}))


register(PvSourceKind(
    name="open_meteo", builder="phaeton.planning.solar.factory:open_meteo",
    section=parts.section("Open-Meteo's 15-minute irradiance forecast (no key for "
                          "non-commercial use) on the arrays of planner.site.", {
        "url": _url("https://api.open-meteo.com", "the Open-Meteo API"),
        "performance_ratio": parts.number(0.85, "AC energy per kWh of irradiance on the "
                                          "rated panels, before the calibration on the "
                                          "meter.", minimum=0.3, maximum=1.0),
        "interval_s": _interval(3600, ""),
    })))

register(PvSourceKind(
    name="forecast_solar", builder="phaeton.planning.solar.factory:forecast_solar",
    section=parts.section("Forecast.Solar's estimate for each array of planner.site (free: "
                          "today and tomorrow, 12 requests an hour, one per array).", {
        "api_key": parts.string(None, "A paid plan's API key (null = the free API).",
                                nullable=True, min_length=1, max_length=128,
                                pattern=r"^[A-Za-z0-9]+$", hint=KEY_HINT),
        "url": _url("https://api.forecast.solar", "the Forecast.Solar API"),
        "interval_s": _interval(3600, ""),
    })))

register(PvSourceKind(
    name="solcast", builder="phaeton.planning.solar.factory:solcast",
    required={"api_key": "the API key of the Solcast account"},
    rules=({"if": {"properties": {"source": {"const": "solcast"}}},
            "then": {"properties": {"solcast": {"properties": {"sites": {"minItems": 1}}}}}},),
    section=parts.section("Solcast's forecast of the rooftop sites set up in the owner's "
                          "Solcast account (free home-user plan: 10 requests a day).", {
        "api_key": parts.string(None, "The Solcast API key.", nullable=True, min_length=1,
                                max_length=256, pattern=r"^[A-Za-z0-9._~+/-]+=*$",
                                hint="an API key of letters, digits and - . _ ~ + / ="),
        "sites": {"type": "array", "default": [], "maxItems": 4,
                  "description": "Resource ids of the rooftop sites (one per array set up at "
                                 "Solcast); each costs a request per fetch.",
                  "items": parts.string(None, "A rooftop site's resource id.", min_length=1,
                                        max_length=64, pattern=r"^[A-Za-z0-9-]+$",
                                        hint="a resource id such as 1234-5678-9abc-def0")},
        "url": _url("https://api.solcast.com.au", "the Solcast API"),
        "interval_s": _interval(None, " (null = 3 h per site, within the free plan)"),
    })))
