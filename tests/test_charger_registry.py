"""The charger registry (`phaeton.chargers.registry`) is the one list of charger brands: the
config schema's protocol enum, its per-protocol sections and "required when" rules, the config
docs and the factory all come from it, and a brand's driver is imported only when it is built.

The made-up brand below is registered in a fresh interpreter (before the schema is built), so
it never leaks into the other tests."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phaeton.chargers import registry
from phaeton.chargers.factory import build_charger
from phaeton.chargers.registry import CHARGER_KINDS, ChargerKind, kind_named
from phaeton.config import apply_defaults
from phaeton.config_schema import CONFIG_SCHEMA
from phaeton.config_schema_parts import host, number, section
from phaeton.sim.world import free_tcp_port

REPO = Path(__file__).resolve().parents[1]
CHARGER = CONFIG_SCHEMA["properties"]["charger"]

FAKE_DRIVER = '''
"""A driver made up by tests/test_charger_registry.py."""
class FakeCharger:
    def __init__(self, address, speed, clock):
        self.address, self.speed, self.clock = address, speed, clock

def build(charger, config, clock):
    section = charger["fake"]
    return FakeCharger(section["address"], section["speed"], clock)
'''

REGISTER_FAKE = '''
import sys
sys.path.insert(0, {directory!r})
from phaeton import config_schema_parts as parts
from phaeton.chargers.registry import ChargerKind, register
register(ChargerKind(
    name="fake", title="a made-up wire", builder="fake_driver:build", required=("address",),
    section=parts.section("A brand made up by the test (used when charger.protocol is fake).", {{
        "address": parts.host(None, "Where the fake charger is."),
        "speed": parts.number(9600, "Baud rate.", integer=True, minimum=300, maximum=115200),
    }})))
'''


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def _fake_brand(tmp_path: Path) -> str:
    """Python that registers the made-up brand (its driver module written to tmp_path)."""
    (tmp_path / "fake_driver.py").write_text(FAKE_DRIVER)
    return REGISTER_FAKE.format(directory=str(tmp_path))


# ---- the schema is made from the registry ---------------------------------------------------

def test_the_protocol_enum_default_and_description_are_the_registered_kinds():
    protocol = CHARGER["properties"]["protocol"]
    assert protocol["enum"] == list(CHARGER_KINDS) == ["alfen", "ocpp"]
    assert protocol["default"] == registry.default_protocol() == "alfen"
    assert protocol["description"] == ("How the charger is driven: alfen (Modbus TCP) or ocpp "
                                       "(OCPP 1.6J).")


def test_every_kind_has_its_section_and_its_required_when_rule():
    for kind in CHARGER_KINDS.values():
        assert CHARGER["properties"][kind.name] == kind.schema_section()
        assert kind.schema_rule() in CHARGER["allOf"]
        for key in kind.required:
            field = CHARGER["properties"][kind.name]["properties"][key]
            assert "default" not in field
            assert field["x-required-when"] == f"charger.protocol is {kind.name!r}"
    assert len(CHARGER["allOf"]) == len(CHARGER_KINDS)
    sections = {k for k, v in CHARGER["properties"].items() if v.get("type") == "object"}
    assert sections == set(CHARGER_KINDS)


def test_a_made_up_brand_needs_only_its_registration(tmp_path):
    """Registering a kind is all it takes: check-config accepts its protocol and section,
    refuses a wrong value in it, requires its required key, the docs list it, and the factory
    builds its driver."""
    good = tmp_path / "good.yaml"
    good.write_text("charger:\n  protocol: fake\n  fake:\n    address: 10.0.0.9\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("charger:\n  protocol: fake\n  fake:\n    address: 10.0.0.9\n"
                   "    speed: 5\n")
    missing = tmp_path / "missing.yaml"
    missing.write_text("charger:\n  protocol: fake\n  fake: {}\n")
    probe = _fake_brand(tmp_path) + textwrap.dedent(f'''
        import contextlib, io, json
        from phaeton.cli import main
        from phaeton.clock import REAL_CLOCK
        from phaeton.config import load_config
        from phaeton.chargers.factory import build_charger
        sys.path.insert(0, "scripts")
        import config_docs
        results = {{}}
        for name in ("good", "bad", "missing"):
            said = io.StringIO()
            with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
                code = main(["check-config", {str(tmp_path)!r} + "/" + name + ".yaml"])
            results[name] = [code, said.getvalue()]
        charger = build_charger(load_config({str(good)!r}), REAL_CLOCK)
        results["built"] = [type(charger).__name__, charger.address, charger.speed]
        results["docs"] = [line for line in config_docs.render().splitlines()
                           if "charger.protocol" in line or "charger.fake" in line]
        print(json.dumps(results))
        ''')
    out = _run(probe)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.splitlines()[-1])
    assert results["good"][0] == 0, results["good"][1]
    assert results["bad"][0] != 0
    assert "charger.fake.speed: must be between 300 and 115200, got 5" in results["bad"][1]
    assert results["missing"][0] != 0
    assert "charger.fake.address" in results["missing"][1]
    assert "is required when charger.protocol is 'fake'" in results["missing"][1]
    assert results["built"] == ["FakeCharger", "10.0.0.9", 9600]
    protocol_row = next(line for line in results["docs"] if "`charger.protocol`" in line)
    assert "`alfen`, `ocpp`, `fake`" in protocol_row
    assert "fake (a made-up wire)" in protocol_row
    assert any("`charger.fake.address`" in line for line in results["docs"])


def test_an_unknown_protocol_is_refused_naming_the_registered_ones(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("charger:\n  protocol: modbus\n")
    out = _run(f"from phaeton.cli import main; raise SystemExit(main(['check-config', "
               f"{str(config)!r}]))")
    assert out.returncode != 0
    assert "charger.protocol" in out.stderr + out.stdout
    assert "alfen" in out.stderr + out.stdout and "ocpp" in out.stderr + out.stdout
    with pytest.raises(ValueError, match="unknown charger protocol 'modbus'; known: alfen, ocpp"):
        build_charger({"charger": {"protocol": "modbus"}})


def test_the_factory_dispatches_through_the_registry(monkeypatch, tmp_path):
    (tmp_path / "fake_driver.py").write_text(FAKE_DRIVER)
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = ChargerKind(name="fake", title="made up", builder="fake_driver:build",
                       section=section("Made up.", {"address": host(None, "Where."),
                                                    "speed": number(1, "Baud.")}),
                       required=("address",))
    monkeypatch.setitem(CHARGER_KINDS, "fake", fake)
    clock = object()
    charger = build_charger({"charger": {"protocol": "fake",
                                         "fake": {"address": "h", "speed": 2}}}, clock)
    assert (type(charger).__name__, charger.address, charger.speed, charger.clock) == \
        ("FakeCharger", "h", 2, clock)
    assert kind_named("fake") is fake


def test_a_kind_is_registered_once_and_must_be_well_formed():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(CHARGER_KINDS["alfen"])
    sect = section("s", {"address": host(None, "a")})
    with pytest.raises(ValueError, match="module:function"):
        ChargerKind(name="x", title="t", section=sect, builder="no_colon")
    with pytest.raises(ValueError, match="lower-case"):
        ChargerKind(name="Bad-Name", title="t", section=sect, builder="m:f")
    with pytest.raises(ValueError, match="not in its section"):
        ChargerKind(name="x", title="t", section=sect, builder="m:f", required=("host",))
    with pytest.raises(ValueError, match="known: alfen, ocpp"):
        kind_named(None)


# ---- drivers are imported when built, each without the other's library -----------------------

@pytest.mark.parametrize("protocol, section_yaml, kept_out", [
    ("alfen", "  alfen:\n    host: 127.0.0.1\n", "ocpp"),
    ("ocpp", "  ocpp:\n    charge_point_id: CP1\n", "pymodbus"),
])
def test_building_one_driver_does_not_import_the_other_library(tmp_path, protocol,
                                                                section_yaml, kept_out):
    path = tmp_path / "config.yaml"
    path.write_text(f"charger:\n  protocol: {protocol}\n{section_yaml}")
    out = _run(f"import sys, json\n"
               f"from phaeton.config import load_config\n"
               f"from phaeton.chargers.factory import build_charger\n"
               f"before = sorted(sys.modules)\n"
               f"charger = build_charger(load_config({str(path)!r}))\n"
               f"print(json.dumps([before, sorted(sys.modules), type(charger).__name__]))")
    assert out.returncode == 0, out.stderr
    before, after, built = json.loads(out.stdout.splitlines()[-1])
    assert built == {"alfen": "AlfenCharger", "ocpp": "OcppCharger"}[protocol]
    assert not [m for m in before if m.startswith("phaeton.chargers.") and m not in (
        "phaeton.chargers.registry", "phaeton.chargers.base", "phaeton.chargers.factory")], \
        "loading a config imported a driver"
    assert not [m for m in after if m == kept_out or m.startswith(kept_out + ".")]


# ---- the OCPP driver owns its central system ------------------------------------------------

async def _accepts(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def test_the_ocpp_driver_starts_and_stops_its_own_central_system():
    port = free_tcp_port()
    config = apply_defaults({"charger": {"protocol": "ocpp", "ocpp": {
        "host": "127.0.0.1", "port": port, "charge_point_id": "CP9"}}})
    charger = build_charger(config)
    assert not await _accepts(port)
    await charger.start()
    try:
        assert await _accepts(port)
    finally:
        await charger.stop()
    assert not await _accepts(port)
