"""The carbon registry (`phaeton.planning.carbon.registry`) is the one list of carbon
intensity sources: the config schema's `carbon.source` enum, sections and "required when"
rules and the factory come from it, and a source's module is imported only when it is built.

The made-up source below is registered in a fresh interpreter (before the schema is built), so
it never leaks into the other tests."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phaeton.config import default_config, validate_config_data
from phaeton.config_schema import CONFIG_SCHEMA
from phaeton.planning.carbon.factory import CarbonConfigError, carbon_from_config
from phaeton.planning.carbon.registry import CARBON_KINDS, CarbonKind, kind_named

REPO = Path(__file__).resolve().parents[1]
CARBON = CONFIG_SCHEMA["properties"]["carbon"]

FAKE_MODULE = '''
"""A carbon source made up by tests/test_carbon_registry.py: one value all day."""
import numpy as np
from phaeton.planning.carbon.base import CarbonSource
from phaeton.planning.carbon.factory import construct
from phaeton.planning.carbon.series import CarbonSeries

class FlatCarbon(CarbonSource):
    source = "flat"

    def __init__(self, value, label=None):
        self.value, self.label = value, label

    async def intensity(self, now_s):
        first = int(now_s) // 900 * 900
        return CarbonSeries(first + 900 * np.arange(4), np.full(4, 900), np.full(4, self.value),
                            self.source, now_s)

    async def refresh(self):
        pass

def build(settings, context):
    return construct(FlatCarbon, settings, context.where)
'''

REGISTER_FAKE = '''
import sys
sys.path.insert(0, {directory!r})
from phaeton import config_schema_parts as parts
from phaeton.planning.carbon.registry import CarbonKind, register
register(CarbonKind(
    name="flat", builder="fake_carbon:build", required={{"value": "the one intensity"}},
    section=parts.section("A source made up by the test.", {{
        "value": parts.number(None, "The intensity.", "g/kWh", nullable=True, minimum=0,
                              maximum=2000),
        "label": parts.string("x", "A word.", max_length=8),
    }})))
'''

BASE = "charger:\n  alfen:\n    host: 192.168.1.20\n"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def problems(carbon: dict) -> dict[str, str]:
    data = {"charger": {"alfen": {"host": "192.168.1.20"}}, "carbon": carbon}
    return {p.key_path: p.message for p in validate_config_data(data)}


# ---- the schema is made from the registry -----------------------------------------------------

def test_the_source_enum_and_sections_are_the_registered_kinds():
    assert CARBON["properties"]["source"]["enum"] == ["none", *CARBON_KINDS] == [
        "none", "static", "uk_carbon_intensity", "entsoe_generation", "electricity_maps",
        "file"]
    assert CARBON["properties"]["source"]["default"] == "none"
    for kind in CARBON_KINDS.values():
        assert CARBON["properties"][kind.name] == kind.schema_section()
        for key in kind.required:
            field = CARBON["properties"][kind.name]["properties"][key]
            assert field["x-required-when"].startswith(f"carbon.source is {kind.name!r}")
    assert "apply to uk_carbon_intensity, entsoe_generation, electricity_maps and file" in \
        CARBON["description"]
    assert kind_named("file").fetches and not kind_named("static").fetches
    with pytest.raises(ValueError, match="must be one of"):
        kind_named("coal_plant")
    with pytest.raises(ValueError, match="not one of"):
        CarbonKind(name="refresh", section={"properties": {}}, builder="a:b")


def test_the_default_is_none_and_builds_nothing():
    assert default_config()["carbon"]["source"] == "none"
    assert carbon_from_config(default_config()["carbon"]) is None
    assert carbon_from_config(None) is None


def test_a_made_up_source_needs_only_its_module_and_registration(tmp_path):
    """check-config accepts the new source and its section, refuses its required key left
    null and an unknown key, and the factory builds the source from the loaded config."""
    (tmp_path / "fake_carbon.py").write_text(FAKE_MODULE)
    configs = {
        "good": "carbon:\n  source: flat\n  flat:\n    value: 123\n    label: mine\n",
        "missing": "carbon:\n  source: flat\n",
        "bad": "carbon:\n  source: flat\n  flat:\n    value: 1\n    colour: red\n",
    }
    for name, carbon in configs.items():
        (tmp_path / f"{name}.yaml").write_text(BASE + carbon)
    probe = REGISTER_FAKE.format(directory=str(tmp_path)) + textwrap.dedent(f'''
        import asyncio, contextlib, io, json
        from phaeton.cli import main
        from phaeton.config import config_to_dict, load_config
        from phaeton.config_schema import CONFIG_SCHEMA
        from phaeton.planning.carbon.factory import carbon_from_config
        results = {{"enum": CONFIG_SCHEMA["properties"]["carbon"]["properties"]["source"]["enum"]}}
        for name in ("good", "missing", "bad"):
            said = io.StringIO()
            with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
                code = main(["check-config", {str(tmp_path)!r} + "/" + name + ".yaml"])
            results[name] = [code, said.getvalue()]
        config = config_to_dict(load_config({str(tmp_path / "good.yaml")!r}))
        source = carbon_from_config(config["carbon"])
        series = asyncio.run(source.intensity(1_780_000_000))
        results["built"] = [type(source).__name__, source.value, source.label, series.unit,
                            series.intensity_at(1_780_000_000)]
        print(json.dumps(results))
        ''')
    out = _run(probe)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.splitlines()[-1])
    assert results["enum"][-1] == "flat"
    assert results["good"][0] == 0, results["good"][1]
    assert results["missing"][0] != 0 and "carbon.flat.value" in results["missing"][1]
    assert results["bad"][0] != 0 and "colour" in results["bad"][1]
    assert results["built"] == ["FlatCarbon", 123, "mine", "g/kWh", 123.0]


# ---- check-config's messages ---------------------------------------------------------------------

def test_missing_tokens_and_locations_are_named():
    found = problems({"source": "electricity_maps"})
    assert found == {"carbon.electricity_maps.token": "is required when carbon.source is "
                     "'electricity_maps' (the API token of Electricity Maps)"}
    assert "carbon.entsoe_generation.token" in problems({"source": "entsoe_generation"})
    assert "carbon.file.location" in problems({"source": "file"})
    # a token of another source is not needed
    assert problems({"source": "uk_carbon_intensity"}) == {}
    assert problems({"source": "electricity_maps",
                     "electricity_maps": {"token": "abc.DEF-123"}}) == {}


def test_static_needs_a_country_or_a_number():
    assert problems({"source": "static"}) == {
        "carbon.static.country": "must be text, got null (null)"}
    assert problems({"source": "static", "static": {"country": "DE"}}) == {}
    assert problems({"source": "static", "static": {"g_per_kwh": 300}}) == {}
    found = problems({"source": "static", "static": {"country": "XX"}})
    assert "must be one of" in found["carbon.static.country"]
    found = problems({"source": "static", "static": {"g_per_kwh": 5000}})
    assert found["carbon.static.g_per_kwh"] == \
        "must be between 0 and 2000 g/kWh (or null), got 5000"


def test_other_mistakes_have_their_messages():
    found = problems({"source": "coal"})
    assert "must be one of 'none', 'static'" in found["carbon.source"]
    found = problems({"source": "entsoe_generation", "entsoe_generation": {
        "token": "has space", "area": "DE"}})
    assert "an API token" in found["carbon.entsoe_generation.token"]
    assert "EIC code" in found["carbon.entsoe_generation.area"]
    found = problems({"refresh": {"interval_s": 10, "backoff_max_s": 60}})
    assert found["carbon.refresh.interval_s"] == "must be between 300 and 86400 s, got 10"
    assert "between 3600 and 86400" in found["carbon.refresh.backoff_max_s"]
    assert "carbon.uk_carbon_intensity.region_id" in problems(
        {"uk_carbon_intensity": {"region_id": 18}})


# ---- the factory ---------------------------------------------------------------------------------

def test_the_factory_builds_each_source_with_its_cache(tmp_path):
    section = default_config()["carbon"]
    expected = {"uk_carbon_intensity": "UkCarbonIntensity",
                "entsoe_generation": "EntsoeGeneration",
                "electricity_maps": "ElectricityMaps", "file": "CarbonFile"}
    section["entsoe_generation"]["token"] = section["electricity_maps"]["token"] = "tok"
    section["file"]["location"] = str(tmp_path / "carbon.csv")
    section["refresh"]["interval_s"] = 900
    for name, cls in expected.items():
        source = carbon_from_config({**section, "source": name}, tmp_path)
        assert type(source).__name__ == cls
        assert source._cache.path == tmp_path / f"carbon-{name}.json"
        assert source.policy.interval_s == 900 and source.timeout_s == 20
    section["static"]["country"] = "FR"
    assert carbon_from_config({**section, "source": "static"}).g_per_kwh == 56


def test_factory_errors_name_the_key():
    with pytest.raises(CarbonConfigError, match=r"carbon.source: must be one of \['none'"):
        carbon_from_config({"source": "coal"})
    with pytest.raises(CarbonConfigError, match="carbon.electricity_maps.token: is required when "
                                                "carbon.source is 'electricity_maps'"):
        carbon_from_config({"source": "electricity_maps", "electricity_maps": {"token": None}})
    with pytest.raises(CarbonConfigError, match=r"carbon.static: unknown key\(s\) \['colour'\]"):
        carbon_from_config({"source": "static", "static": {"colour": 1}})
    with pytest.raises(CarbonConfigError, match="carbon.refresh: backoff_max_s"):
        carbon_from_config({"source": "uk_carbon_intensity",
                            "refresh": {"backoff_base_s": 600, "backoff_max_s": 60}})
    with pytest.raises(CarbonConfigError, match="carbon.uk_carbon_intensity: region_id"):
        carbon_from_config({"source": "uk_carbon_intensity",
                            "uk_carbon_intensity": {"region_id": 40}})


def test_loading_a_config_imports_no_source_and_building_imports_no_http_client(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(BASE + "carbon:\n  source: electricity_maps\n  electricity_maps:\n"
                           "    token: abc\n")
    code = textwrap.dedent(f'''
        import json, sys
        from phaeton.config import load_config, config_to_dict
        config = load_config({str(path)!r})
        loaded = sorted(m for m in sys.modules if m.startswith("phaeton.planning.carbon."))
        numpy_at_load = "numpy" in sys.modules
        from phaeton.planning.carbon.factory import carbon_from_config
        source = carbon_from_config(config_to_dict(config)["carbon"])
        print(json.dumps([loaded, numpy_at_load, type(source).__name__,
                          any(m.startswith("aiohttp") for m in sys.modules)]))
        ''')
    out = _run(code)
    assert out.returncode == 0, out.stderr
    loaded, numpy_at_load, built, aiohttp = json.loads(out.stdout.splitlines()[-1])
    assert loaded == ["phaeton.planning.carbon.countries", "phaeton.planning.carbon.registry"]
    assert not numpy_at_load and built == "ElectricityMaps" and not aiohttp
