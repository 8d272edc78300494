"""Several chargers and circuits in config.yaml: an old one-charger file means what it meant,
a `chargers` list gives each charger its own view, and check-config names every layout
mistake an owner can make (the messages are what `phaeton check-config` prints)."""
from __future__ import annotations

import pytest

from phaeton.config import ConfigError, parse_config_text
from phaeton.site_layout import charger_entries, circuits

TWO = """
circuits: [{name: garage, max_current_a: 20}]
chargers:
  - {id: left, alfen: {host: 10.0.0.5}, circuit: garage, custom_name: Left}
  - {id: right, protocol: ocpp, phases: 1, phase: L2, priority: 1, instance: 7,
     max_current_a: 32, ocpp: {charge_point_id: cp1}}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text)
    return [f"{p.key_path}: {p.message}" for p in caught.value.problems]


def test_an_old_one_charger_config_is_a_list_of_one_with_its_device_keys():
    config = parse_config_text("charger: {alfen: {host: 10.0.0.9}}\n"
                               "device: {unique_id: car, instance: 41, custom_name: Garage}\n")
    (entry,) = charger_entries(config)
    assert (entry.id, entry.instance, entry.custom_name, entry.circuit, entry.priority) == \
        ("car", 41, "Garage", "main", 0)
    assert entry.config is config                      # the very same config, nothing rebuilt


def test_each_charger_of_a_list_sees_its_own_keys():
    config = parse_config_text(TWO)
    left, right = charger_entries(config)
    assert left.config["charger"]["alfen"]["host"] == "10.0.0.5"
    assert left.config["device"]["unique_id"] == "left" and left.instance == 40   # 40 + 0
    assert right.config["charger"]["protocol"] == "ocpp" and right.instance == 7
    assert right.config["charger"]["max_current_a"] == 32 and right.grid_phase == 1
    assert right.priority == 1 and right.phases == 1
    tree = circuits(config)
    assert tree["garage"].parent is tree["main"] and tree["main"].max_current_a == 25


def test_layout_mistakes_are_named_each_with_its_key():
    found = problems("""
charger: {alfen: {host: 1.2.3.4}}
device: {unique_id: x}
circuits:
  - {name: main, max_current_a: 20}
  - {name: a, max_current_a: 30, parent: b}
  - {name: b, max_current_a: 30, parent: a}
  - {name: small, max_current_a: 4}
chargers:
  - {id: left, alfen: {host: 10.0.0.5}, circuit: small}
  - {id: left, alfen: {host: 10.0.0.5}, circuit: nowhere, min_current_a: 10, max_current_a: 8}
  - {id: r, protocol: ocpp, ocpp: {charge_point_id: cp1}}
  - {id: s, protocol: ocpp, ocpp: {charge_point_id: cp1}}
  - {id: t, protocol: ocpp, ocpp: {charge_point_id: cp1, connector_id: 2}}
""")
    assert "charger: must not be set together with chargers: with several chargers each one " \
           "is an entry of chargers" in found
    assert "device.unique_id: must not be set together with chargers: each charger has its " \
           "own chargers[i].id" in found
    assert "circuits[0].name: must not be main: main is the grid connection (site.fuse_a)" in found
    assert "circuits[1].parent: makes a loop: 'a' hangs below itself" in found
    assert "chargers[0].circuit: can never charge: circuit 'small' allows 4 A, below this " \
           "charger's min_current_a (6 A)" in found
    assert "chargers[1].id: repeats the id of chargers[0]" in found
    assert "chargers[1].alfen: drives the same Modbus socket as chargers[0] (host, port and " \
           "socket_unit_id)" in found
    assert any(p.startswith("chargers[1].circuit: names no circuit: 'nowhere'") for p in found)
    assert "chargers[1].min_current_a: must be ≤ chargers[1].max_current_a (8), got 10" in found
    assert "chargers[3].ocpp: drives the same OCPP connector as chargers[2] (charge_point_id " \
           "and connector_id)" in found
    assert not any(p.startswith("chargers[4]") for p in found)   # connector 2 of the same point


def test_a_charger_entry_without_its_address_or_id_is_refused():
    found = problems("chargers:\n  - {alfen: {port: 502}}\n")
    assert any(p.startswith("chargers[0].id:") for p in found), found
    assert any(p.startswith("chargers[0].alfen.host:") for p in found), found


def test_a_one_phase_charger_on_l3_of_a_one_phase_site_is_refused():
    found = problems("site: {phases: 1}\nchargers:\n"
                     "  - {id: a, phases: 1, phase: L3, alfen: {host: 10.0.0.5}}\n")
    assert found == ["chargers[0].phase: must be L1: the grid connection has one phase, got L3"]
