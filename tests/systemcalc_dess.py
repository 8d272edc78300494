"""What dbus-systemcalc-py's Dynamic ESS delegate registers and reads, written down by hand.

Source: `delegates/dynamicess.py` in victronenergy/dbus-systemcalc-py, its `get_settings`
(the settings with their default, min and max: the default's type is the setting's type, and
min = max = 0 means "no range"), `NUM_SCHEDULES` and the `Flags` bits. Nothing is parsed from
Victron's code at run time: when systemcalc changes, this table is updated by hand and the tests
show where phaeton differs.
"""
from __future__ import annotations

NUM_SCHEDULES = 48

# per schedule entry: /Settings/DynamicEss/Schedule/<n>/<field>
ENTRY_FIELDS: dict[str, tuple] = {
    "Start": (0, 0, 0),
    "Duration": (0, 0, 0),
    "TargetSoc": (0.0, 0.0, 100.0),     # a decimal
    "Soc": (0, 0, 100),                 # the legacy integer target, read when TargetSoc is 0
    "AllowGridFeedIn": (0, 0, 1),
    "Restrictions": (0, 0, 3),          # 1 battery -> grid, 2 grid -> battery
    "Strategy": (0, 0, 3),
    "Flags": (0, 0, 3),                 # 1 fast charge, 2 switch PV off
}

FLAG_FAST_CHARGE = 1
FLAG_DISABLE_PV = 2

# /Settings/DynamicEss/<name>
DESS_SETTINGS: dict[str, tuple] = {
    "Mode": (0, 0, 4),
    "BatteryCapacity": (0.0, 0.0, 1000.0),
    "SystemEfficiency": (90.0, 50.0, 100.0),
    "FullChargeInterval": (14, -1, 99),
    "FullChargeDuration": (2, -1, 12),
    "OperatingMode": (-1, -1, 2),
    "BatteryChargeLimit": (-1.0, -1.0, 9999.9),
    "BatteryDischargeLimit": (-1.0, -1.0, 9999.9),
    "GridImportLimit": (-1.0, -1.0, 9999.9),
    "GridExportLimit": (-1.0, -1.0, 9999.9),
}


def entry_path(index: int, field: str) -> str:
    return f"/Settings/DynamicEss/Schedule/{index}/{field}"


def all_settings() -> dict[str, tuple]:
    """Every DESS setting systemcalc registers: path -> (default, min, max)."""
    table = {f"/Settings/DynamicEss/{name}": spec for name, spec in DESS_SETTINGS.items()}
    for index in range(NUM_SCHEDULES):
        for field, spec in ENTRY_FIELDS.items():
            table[entry_path(index, field)] = spec
    return table


def preload(settings_service) -> None:
    """Give a `velib.settings_service.SettingsService` (not yet on the bus) the DESS settings
    a GX has because systemcalc registered them at boot."""
    for path, (default, low, high) in all_settings().items():
        if path not in settings_service.settings:
            settings_service._add(path, default, None, low, high, False)
    settings_service.save()
