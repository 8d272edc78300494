"""The tariff registry (`phaeton.planning.tariffs.registry`) is the one list of price sources:
the config schema's `planner.tariff.type` enum and sections, check-config's "required when"
rule, the planner's mapping of the config and the factory all come from it, and a tariff's
module is imported only when it is built.

The made-up tariff below is registered in a fresh interpreter (before the schema is built), so
it never leaks into the other tests."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phaeton.config_schema import CONFIG_SCHEMA
from phaeton.config_schema_parts import number, section, string
from phaeton.planning.tariffs import registry
from phaeton.planning.tariffs.factory import TariffConfigError, tariff_from_config
from phaeton.planning.tariffs.registry import TARIFF_KINDS, TariffKind, kind_named

REPO = Path(__file__).resolve().parents[1]
TARIFF = CONFIG_SCHEMA["properties"]["planner"]["properties"]["tariff"]

FAKE_MODULE = '''
"""A tariff made up by tests/test_tariff_registry.py: one price all day."""
import numpy as np
from phaeton.planning.tariffs.base import Tariff
from phaeton.planning.tariffs.factory import construct
from phaeton.planning.tariffs.series import PriceSeries

class FlatTariff(Tariff):
    source = "flat"

    def __init__(self, price, label=None, *, unit):
        self.price, self.label, self.unit = price, label, unit

    async def prices(self, now_s):
        first = int(now_s) // 900 * 900
        return PriceSeries(first + 900 * np.arange(4), np.full(4, 900), np.full(4, self.price),
                           np.zeros(4), self.source, now_s, unit=self.unit)

    async def refresh(self):
        pass

def build(settings, context):
    return construct(FlatTariff, settings, context.where, unit=context.unit)
'''

REGISTER_FAKE = '''
import sys
sys.path.insert(0, {directory!r})
from phaeton import config_schema_parts as parts
from phaeton.planning.tariffs.registry import TariffKind, register
register(TariffKind(
    name="flat", builder="fake_tariff:build", required={{"price": "the one price"}},
    section=parts.section("A tariff made up by the test.", {{
        "price": parts.number(None, "The price.", "currency/kWh", nullable=True,
                              minimum=-10, maximum=10),
        "label": parts.string("x", "A word.", max_length=8),
    }})))
'''


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


# ---- the schema is made from the registry ---------------------------------------------------

def test_the_type_enum_and_sections_are_the_registered_kinds():
    assert TARIFF["properties"]["type"]["enum"] == list(TARIFF_KINDS) == [
        "static", "time_of_use", "tibber", "entsoe", "file"]
    assert TARIFF["properties"]["type"]["default"] == "static"
    for kind in TARIFF_KINDS.values():
        assert TARIFF["properties"][kind.name] == kind.schema_section()
        for key in kind.required:
            field = TARIFF["properties"][kind.name]["properties"][key]
            assert field["x-required-when"] == f"planner.tariff.type is {kind.name!r}"
    assert registry.fetching_names() == ["tibber", "entsoe", "file"]
    assert "apply to tibber, entsoe and file." in TARIFF["description"]


def test_a_made_up_tariff_needs_only_its_module_and_registration(tmp_path):
    """check-config accepts the new type and its section, requires its required key with the
    registry's words, refuses a wrong value in it, and the factory builds the tariff from the
    loaded config (prices in the config's currency)."""
    (tmp_path / "fake_tariff.py").write_text(FAKE_MODULE)
    configs = {
        "good": "  tariff:\n    type: flat\n    flat:\n      price: 0.21\n      label: cheap\n",
        "missing": "  tariff:\n    type: flat\n",
        "bad": "  tariff:\n    type: flat\n    flat:\n      price: 0.21\n      colour: red\n",
    }
    for name, tariff in configs.items():
        (tmp_path / f"{name}.yaml").write_text(
            "charger:\n  alfen:\n    host: 192.168.1.20\nsession:\n  currency: SEK\n"
            f"planner:\n{tariff}")
    probe = REGISTER_FAKE.format(directory=str(tmp_path)) + textwrap.dedent(f'''
        import asyncio, contextlib, io, json
        from phaeton.cli import main
        from phaeton.config import config_to_dict, load_config
        from phaeton.planner.service import tariff_mapping
        from phaeton.planning.tariffs.factory import tariff_from_config
        results = {{}}
        for name in ("good", "missing", "bad"):
            said = io.StringIO()
            with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
                code = main(["check-config", {str(tmp_path)!r} + "/" + name + ".yaml"])
            results[name] = [code, said.getvalue()]
        config = config_to_dict(load_config({str(tmp_path / "good.yaml")!r}))
        tariff = tariff_from_config(tariff_mapping(config["planner"]["tariff"]),
                                    currency=config["session"]["currency"])
        series = asyncio.run(tariff.prices(1_780_000_000))
        results["built"] = [type(tariff).__name__, tariff.price, tariff.label, series.unit,
                            series.price_at(1_780_000_000)[0]]
        print(json.dumps(results))
        ''')
    out = _run(probe)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.splitlines()[-1])
    assert results["good"][0] == 0, results["good"][1]
    assert results["missing"][0] != 0
    assert "planner.tariff.flat.price" in results["missing"][1]
    assert "is required when planner.tariff.type is 'flat': the one price" in \
        results["missing"][1]
    assert results["bad"][0] != 0 and "colour" in results["bad"][1]
    assert results["built"] == ["FlatTariff", 0.21, "cheap", "SEK/kWh", 0.21]


def test_an_unknown_type_is_refused_naming_the_registered_ones(tmp_path):
    with pytest.raises(TariffConfigError) as info:
        tariff_from_config({"type": "nordpool"}, where="planner.tariff")
    assert str(info.value) == ("planner.tariff.type: must be one of ['static', 'time_of_use', "
                               "'tibber', 'entsoe', 'file'], got 'nordpool'")
    config = tmp_path / "config.yaml"
    config.write_text("charger:\n  alfen:\n    host: 192.168.1.20\n"
                      "planner:\n  tariff:\n    type: nordpool\n")
    out = _run(f"from phaeton.cli import main; raise SystemExit(main(['check-config', "
               f"{str(config)!r}]))")
    said = out.stderr + out.stdout
    assert out.returncode != 0 and "planner.tariff.type" in said
    assert all(name in said for name in TARIFF_KINDS)


def test_the_factory_dispatches_through_the_registry(monkeypatch, tmp_path):
    (tmp_path / "fake_tariff.py").write_text(FAKE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    flat = TariffKind(name="flat", builder="fake_tariff:build",
                      section=section("Made up.", {"price": number(0.1, "The price."),
                                                   "label": string("x", "A word.")}))
    monkeypatch.setitem(TARIFF_KINDS, "flat", flat)
    tariff = tariff_from_config({"type": "flat", "price": 0.4}, currency="CHF")
    assert (type(tariff).__name__, tariff.price, tariff.unit) == ("FlatTariff", 0.4, "CHF/kWh")
    assert kind_named("flat") is flat
    with pytest.raises(TariffConfigError, match=r"tariff: unknown key\(s\) \['speed'\]"):
        tariff_from_config({"type": "flat", "price": 0.4, "speed": 3})


def test_a_kind_is_registered_once_and_must_be_well_formed():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(TARIFF_KINDS["static"])
    sect = section("s", {"token": string(None, "t", nullable=True)})
    with pytest.raises(ValueError, match="module:function"):
        TariffKind(name="x", section=sect, builder="no_colon")
    with pytest.raises(ValueError, match="lower-case"):
        TariffKind(name="Bad-Name", section=sect, builder="m:f")
    with pytest.raises(ValueError, match="not in its section"):
        TariffKind(name="x", section=sect, builder="m:f", required={"url": "where"})


def test_the_registry_loads_no_tariff_module_and_building_loads_only_its_own():
    out = _run("import sys, json\n"
               "from phaeton.config import load_config, default_config\n"
               "from phaeton.planning.tariffs.registry import TARIFF_KINDS\n"
               "before = sorted(sys.modules)\n"
               "from phaeton.planning.tariffs.factory import tariff_from_config\n"
               "tariff_from_config({'type': 'static', 'import_eur_per_kwh': 0.3})\n"
               "print(json.dumps([before, sorted(sys.modules)]))")
    assert out.returncode == 0, out.stderr
    before, after = json.loads(out.stdout.splitlines()[-1])
    tariff_modules = [m for m in before if m.startswith("phaeton.planning.tariffs.")]
    assert tariff_modules == ["phaeton.planning.tariffs.registry"]
    assert "numpy" not in before
    assert "phaeton.planning.tariffs.static" in after
    assert not {"phaeton.planning.tariffs.tibber", "phaeton.planning.tariffs.entsoe",
                "phaeton.planning.tariffs.file"} & set(after)
