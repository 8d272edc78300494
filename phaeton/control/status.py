"""Victron EV charger /Status codes and how vehicle states and charger errors map onto them."""
from __future__ import annotations

import enum

from phaeton.chargers.base import VehicleState


class ChargerStatus(enum.IntEnum):
    DISCONNECTED = 0
    CONNECTED = 1
    CHARGING = 2
    CHARGED = 3
    WAITING_FOR_SUN = 4
    WAITING_FOR_RFID = 5
    WAITING_FOR_START = 6
    LOW_SOC = 7
    GROUND_TEST_ERROR = 8
    WELDED_CONTACTS = 9
    CP_INPUT_TEST_ERROR = 10
    RESIDUAL_CURRENT = 11
    UNDERVOLTAGE = 12
    OVERVOLTAGE = 13
    OVERHEATING = 14
    CHARGING_LIMIT = 20
    START_CHARGING = 21
    SWITCHING_TO_3_PHASE = 22
    SWITCHING_TO_1_PHASE = 23
    STOP_CHARGING = 24


# Words in a charger's error text -> the closest Victron error code (first match wins).
_ERROR_KEYWORDS: tuple[tuple[tuple[str, ...], ChargerStatus], ...] = (
    (("ground", "earth", "pe "), ChargerStatus.GROUND_TEST_ERROR),
    (("weld",), ChargerStatus.WELDED_CONTACTS),
    (("control pilot", "cp ", "pilot", "state e", "state f"), ChargerStatus.CP_INPUT_TEST_ERROR),
    (("residual", "rcd", "rcm", "leakage", "fault current"), ChargerStatus.RESIDUAL_CURRENT),
    (("undervoltage", "under voltage", "under-voltage", "low voltage"), ChargerStatus.UNDERVOLTAGE),
    (("overvoltage", "over voltage", "over-voltage", "high voltage"), ChargerStatus.OVERVOLTAGE),
    (("temperature", "overheat", "over temp", "thermal", "hot"), ChargerStatus.OVERHEATING),
)


def error_status(error_reason: str | None) -> ChargerStatus:
    """The closest /Status for a charger error, from keywords in its error text.

    Victron has codes only for specific hardware faults (8-14). An error we cannot place (or
    without text) maps to 24 "Stop charging": charging has stopped and the reason text (shown by
    the web UI) says why; 0/1 would wrongly suggest a healthy idle charger.
    """
    text = f" {(error_reason or '').lower()} "
    for words, status in _ERROR_KEYWORDS:
        if any(word in text for word in words):
            return status
    return ChargerStatus.STOP_CHARGING


def vehicle_status(state: VehicleState, error_reason: str | None = None) -> ChargerStatus:
    """The /Status the vehicle state alone implies."""
    if state is VehicleState.NO_VEHICLE:
        return ChargerStatus.DISCONNECTED
    if state is VehicleState.CONNECTED:
        return ChargerStatus.CONNECTED
    if state is VehicleState.CHARGING:
        return ChargerStatus.CHARGING
    if state is VehicleState.CHARGED:
        return ChargerStatus.CHARGED
    return error_status(error_reason)
