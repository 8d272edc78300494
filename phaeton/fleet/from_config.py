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
from phaeton.planning.knobs import SiteFacts
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
    """What a schedule may ask of this site: the planner's battery and the fuse's power as the
    planner sees them (`SiteFacts`), and each charger's most (`chargers`: (id, that charger's
    defaulted config))."""
    facts, battery = SiteFacts.from_config(config), config["planner"]["battery"]
    return SiteLimits(max_charge_kw=facts.battery_max_charge_kw,
                      max_discharge_kw=facts.battery_max_discharge_kw,
                      soc_min_pct=float(battery["min_soc_pct"]),
                      soc_max_pct=facts.battery_max_soc_pct,
                      import_limit_kw=facts.import_limit_kw,
                      has_battery=facts.battery_capacity_kwh > 0,
                      battery_steered=config["planner"]["ess_control"] != "off",
                      charger_max_kw={ident: SiteFacts.from_config(entry).ev_max_kw
                                      for ident, entry in chargers})


def battery_facts(config: Mapping[str, Any]) -> BatteryFacts | None:
    facts = SiteFacts.from_config(config)
    if facts.battery_capacity_kwh <= 0:
        return None
    one_way = math.sqrt(facts.battery_round_trip)
    return BatteryFacts(capacity_kwh=facts.battery_capacity_kwh,
                        soc_min=float(config["planner"]["battery"]["min_soc_pct"]) / 100.0,
                        soc_max=facts.battery_max_soc_pct / 100.0,
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
