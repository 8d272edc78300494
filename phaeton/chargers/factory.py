"""Build the configured charger driver (the only place that knows the protocols by name)."""
from __future__ import annotations

from typing import Any, Mapping

from phaeton.chargers.base import Charger
from phaeton.clock import REAL_CLOCK, Clock


def build_charger(config: Mapping[str, Any], clock: Clock = REAL_CLOCK) -> tuple[Charger, Any]:
    """(charger, OCPP central system or None) from the whole config."""
    charger = config["charger"]
    if charger["protocol"] == "alfen":
        from phaeton.chargers.alfen import AlfenCharger, AlfenConfig

        alfen = charger["alfen"]
        return AlfenCharger(AlfenConfig(
            host=alfen["host"], port=alfen["port"], station_unit_id=alfen["station_unit_id"],
            socket_unit_id=alfen["socket_unit_id"], timeout_s=float(alfen["timeout_s"]),
            setpoint_refresh_s=float(alfen["setpoint_refresh_s"]),
            reconnect_max_s=float(alfen["reconnect_max_s"])), clock=clock), None
    if charger["protocol"] == "ocpp":
        from phaeton.chargers.ocpp import OcppCharger, OcppChargerConfig
        from phaeton.chargers.ocpp_server import OcppCentralSystem

        ocpp = charger["ocpp"]
        central = OcppCentralSystem(host=ocpp["host"], port=ocpp["port"], path=ocpp["path"])
        driver = OcppCharger(OcppChargerConfig(
            charge_point_id=ocpp["charge_point_id"], connector_id=ocpp["connector_id"],
            password=ocpp["password"], meter_interval_s=ocpp["meter_interval_s"],
            heartbeat_interval_s=ocpp["heartbeat_interval_s"], phases=charger["phases"],
            voltage_v=float(config["site"]["nominal_voltage_v"]),
            stop_current_a=float(charger["safe_current_a"])), central, clock=clock)
        return driver, central
    raise ValueError(f"unknown charger protocol {charger['protocol']!r}")
