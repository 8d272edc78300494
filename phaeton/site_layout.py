"""The site's chargers and circuits as the config describes them.

A config names its chargers in one of two ways: the one-charger form (`charger:` with
`device:`, every config before several chargers existed) or a `chargers:` list. Both give the
same `ChargerEntry` list here, so an old config.yaml means exactly what it meant: one charger
whose id is `device.unique_id` (D-Bus name `com.victronenergy.evcharger.phaeton_<id>`), on the
main fuse, priority 0.

Each loadpoint is built from its own view of the config (`charger_config`): the whole config
with `charger` and `device` being that charger's, so everything that reads one charger's keys
(the control settings, the drivers) reads the right ones.

Circuits: `main` is the grid connection with `site.fuse_a`; `circuits:` adds the fuses below it
(`phaeton.control.circuit.Circuit`). The config check (`phaeton.config_layout`) has made sure
names, parents and the chargers' circuits fit together.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from phaeton.config import Config, config_to_dict
from phaeton.config_layout import MAIN, first_charger_section
from phaeton.control.circuit import Circuit

PHASE_INDEX = {"L1": 0, "L2": 1, "L3": 2}


@dataclass(frozen=True)
class ChargerEntry:
    """One charger of the site: its id, where it hangs, how it shares, and its config view."""

    id: str
    priority: int
    circuit: str
    grid_phase: int               # 0..2: the grid phase a single-phase charger is wired to
    instance: int                 # preferred VRM device instance
    custom_name: str
    config: Config                # the whole config with this charger as `charger`/`device`

    @property
    def phases(self) -> int:
        return int(self.config["charger"]["phases"])


def charger_entries(config: Config) -> list[ChargerEntry]:
    """The site's chargers in config order (the old one-charger form is a list of one)."""
    entries = list(config["chargers"])
    device = config["device"]
    if not entries:
        return [ChargerEntry(id=str(device["unique_id"]), priority=0, circuit=MAIN, grid_phase=0,
                             instance=int(device["instance"]),
                             custom_name=str(device["custom_name"]), config=config)]
    result = []
    for index, entry in enumerate(entries):
        instance = entry["instance"]
        result.append(ChargerEntry(
            id=str(entry["id"]), priority=int(entry["priority"]), circuit=str(entry["circuit"]),
            grid_phase=PHASE_INDEX[str(entry["phase"])],
            instance=int(device["instance"]) + index if instance is None else int(instance),
            custom_name=str(entry["custom_name"]),
            config=charger_config(config, entry, index)))
    return result


def charger_config(config: Config, entry: Mapping[str, Any], index: int) -> Config:
    """`config` seen from one `chargers` entry: its keys as `charger`, its id, name and
    instance as `device`."""
    data = config_to_dict(config)
    plain = config_to_dict(entry)
    data["charger"] = {**first_charger_section(plain),
                       "ev_capacity_kwh": plain.get("ev_capacity_kwh")}   # for the plan
    instance = plain.get("instance")
    data["device"] = {**data["device"], "unique_id": str(plain["id"]),
                      "custom_name": plain.get("custom_name", ""),
                      "instance": data["device"]["instance"] + index if instance is None
                      else instance}
    return Config(data)


def circuits(config: Config) -> dict[str, Circuit]:
    """Every circuit by name, `main` (site.fuse_a) first, each with its parent."""
    result = {MAIN: Circuit(MAIN, float(config["site"]["fuse_a"]))}
    pending = {str(c["name"]): c for c in config["circuits"]}
    while pending:
        ready = [name for name, c in pending.items() if str(c["parent"]) in result]
        if not ready:      # the config check refuses unknown parents and loops
            raise ValueError(f"circuits without a way up to main: {', '.join(sorted(pending))}")
        for name in ready:
            c = pending.pop(name)
            result[name] = Circuit(name, float(c["max_current_a"]), result[str(c["parent"])])
    return result


def several_cars(config: Config) -> list[ChargerEntry]:
    """The chargers whose cars the planner plans for together: every one of a `chargers`
    list of two or more; none otherwise (one car: the planner's single-EV form)."""
    entries = charger_entries(config)
    return entries if len(entries) > 1 else []


def shared_ev_limit_kw(config: Config) -> float | None:
    """The most all the chargers together may draw, from the lowest circuit above every one
    of them (None when that is the main fuse: the grid import limit covers it)."""
    tree = circuits(config)
    chains = [tree[entry.circuit].chain for entry in charger_entries(config)]
    common = [c for c in chains[0] if all(c in chain for chain in chains[1:])]
    lowest = common[0] if common else None
    if lowest is None or lowest.parent is None:
        return None
    site = config["site"]
    return lowest.max_current_a * int(site["phases"]) * float(site["nominal_voltage_v"]) / 1000.0
