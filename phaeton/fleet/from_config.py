"""The fleet site built from the service's config (`fleet:`, docs/fleet.md): its broker, its
limits (the planner's battery, the fuse, each charger) and its view of the GX readings."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from phaeton.clock import Clock
from phaeton.control.readings import SiteReadings, sum_phases
from phaeton.fleet.contract import SiteLimits
from phaeton.fleet.link import BrokerLink
from phaeton.fleet.site_client import FleetSite
from phaeton.fleet.slots import BatteryFacts, FleetReadings
from phaeton.store.fleet_store import FleetStore

FLEET_DB = "fleet.db"


def fleet_link(fleet: Mapping[str, Any]) -> BrokerLink:
    broker, tls = fleet["broker"], fleet["broker"]["tls"]
    return BrokerLink(host=str(broker["host"]), port=int(broker["port"]),
                     username=broker["username"], password=broker["password"],
                     ca_file=tls["ca_file"], cert_file=tls["cert_file"],
                     key_file=tls["key_file"], keepalive_s=int(broker["keepalive_s"]))


def site_limits(config: Mapping[str, Any], chargers: Sequence[tuple[str, Mapping[str, Any]]]
                ) -> SiteLimits:
    """What a schedule may ask of this site: the planner's battery, the fuse's power, and
    each charger's most (`chargers`: (id, that charger's defaulted config))."""
    site, battery = config["site"], config["planner"]["battery"]
    volts = float(site["nominal_voltage_v"])
    import_kw = float(site["fuse_a"]) * int(site["phases"]) * volts / 1000.0
    charger_kw = {ident: float(entry["charger"]["max_current_a"])
                  * int(entry["charger"]["phases"]) * volts / 1000.0
                  for ident, entry in chargers}
    return SiteLimits(max_charge_kw=float(battery["max_charge_kw"]),
                      max_discharge_kw=float(battery["max_discharge_kw"]),
                      soc_min_pct=float(battery["min_soc_pct"]),
                      soc_max_pct=float(battery["max_soc_pct"]),
                      import_limit_kw=import_kw,
                      has_battery=float(battery["capacity_kwh"]) > 0,
                      battery_steered=config["planner"]["ess_control"] != "off",
                      charger_max_kw=charger_kw)


def battery_facts(config: Mapping[str, Any]) -> BatteryFacts | None:
    battery = config["planner"]["battery"]
    if float(battery["capacity_kwh"]) <= 0:
        return None
    one_way = math.sqrt(float(battery["round_trip_efficiency_pct"]) / 100.0)
    return BatteryFacts(capacity_kwh=float(battery["capacity_kwh"]),
                        soc_min=float(battery["min_soc_pct"]) / 100.0,
                        soc_max=float(battery["max_soc_pct"]) / 100.0,
                        charge_efficiency=one_way, discharge_efficiency=one_way)


def fleet_readings(readings: SiteReadings | None) -> FleetReadings:
    """The GX's values as the fleet reports and measures them."""
    if readings is None:
        return FleetReadings()
    pv_ac = sum_phases(readings.pv_ac_w)
    pv = None if pv_ac is None and readings.pv_dc_w is None \
        else (pv_ac or 0.0) + (readings.pv_dc_w or 0.0)
    return FleetReadings(soc_pct=readings.battery_soc_pct, battery_w=readings.battery_power_w,
                         grid_w=readings.grid_total_w, pv_w=pv,
                         consumption_w=sum_phases(readings.consumption_w))


def build_fleet_site(config: Mapping[str, Any], chargers: Sequence[tuple[str, Mapping[str, Any]]],
                     *, clock: Clock, readings: Callable[[], SiteReadings | None],
                     blocked: Callable[[], str | None], local_steers: Callable[[], bool],
                     version: str = "") -> FleetSite:
    fleet = config["fleet"]
    store = FleetStore(Path(str(config["data_dir"])) / FLEET_DB)
    return FleetSite(site_id=str(fleet["site_id"]), key=str(fleet["hmac_key"]), store=store,
                     limits=site_limits(config, chargers), battery=battery_facts(config),
                     readings=lambda: fleet_readings(readings()), blocked=blocked,
                     local_steers=local_steers, clock=clock,
                     topic_prefix=str(fleet["topic_prefix"]),
                     telemetry_s=float(fleet["telemetry_s"]), version=version)
