"""velib: Victron Venus OS D-Bus conventions on asyncio (dbus-next).

- `velib.values`: Victron's value/type mapping (invalid = `ai []`) and write coercion.
- `velib.service`: export a service (BusItem tree, batching, SetValue codes).
- `velib.monitor`: follow other services (value cache with ages, change callbacks, SetValue).
- `velib.settings`: client for com.victronenergy.settings, device-instance allocation.
- `velib.settings_service`: a localsettings-compatible settings service (simulator, tests).
- `velib.clock`: the one-method clock ages are measured on (any object with `monotonic()`).

velib knows Venus conventions and nothing about chargers; it imports nothing from phaeton.
"""
