"""What both minimal drivers of the benchmarks publish and decide, apart from their stack.

`reference_driver.py` (dbus-python + GLib, blocking Modbus, `/usr/bin/python3`) and
`stack_floor_driver.py` (phaeton's own stack: velib on dbus-next, pymodbus, asyncio) publish the
same 42 paths of an Alfen NG9xx, refuse the same writes, turn the same three register blocks into
the same values. Standard library only, so either interpreter imports it.

    declare_paths(add, accept, connection="...", process_name="...", max_current_a=16.0)
    ok, setpoint = accept_write(path, value, current, max_current_a)
    values, session = measured_values(status, meter, control, session, now)
"""
import math
import struct

MODE_TEXT = {0: "Manual", 1: "Auto", 2: "Scheduled"}
STATUS_TEXT = {0: "Disconnected", 1: "Connected", 2: "Charging", 3: "Charged",
               4: "Waiting for sun", 5: "Waiting for RFID", 6: "Waiting for start"}
POSITION_TEXT = {0: "AC output", 1: "AC input"}
PLANNER_PATHS = ("/Planner/Strategy", "/Planner/TargetSoc", "/Planner/NextSlot",
                 "/Planner/PlannedCost", "/Planner/PlannedSavings", "/Planner/Reason",
                 "/Planner/DessConflict")
PLANNER_START = {"/Planner/Strategy": 2, "/Planner/DessConflict": 0,
                 "/Planner/Reason": "plan only, the battery is not steered (reference driver)"}
STATION_UNIT_DEFAULT, SOCKET_UNIT_DEFAULT = 200, 1
IDENTITY = (100, 78)
STATUS = (1100, 6)
METER = (300, 78)
CONTROL = (1200, 16)
SETPOINT_REGISTER = 1210
SETPOINT_REFRESH_S = 20.0
MIN_CURRENT_A = 6.0
MEASURED_PATHS = ("/Current", "/Ac/Power", "/Ac/L1/Power", "/Ac/L2/Power", "/Ac/L3/Power",
                  "/Ac/PhaseCount")
LIMITS = {"/Mode": (0, 2), "/StartStop": (0, 1), "/SetPhases": (1, 3),
          "/Position": (0, 1), "/AutoStart": (0, 1)}


class Registers:
    """One block of registers as raw big-endian bytes; NaN (or all-0xFFFF) reads as None."""

    def __init__(self, address, data):
        self.address, self.data = address, bytes(data)

    @classmethod
    def from_words(cls, address, words):
        return cls(address, struct.pack(">%dH" % len(words), *words))

    def _bytes(self, address, words):
        start = 2 * (address - self.address)
        return self.data[start:start + 2 * words]

    def uint16(self, address):
        (value,) = struct.unpack(">H", self._bytes(address, 1))
        return None if value == 0xFFFF else value

    def float32(self, address):
        (value,) = struct.unpack(">f", self._bytes(address, 2))
        return value if math.isfinite(value) else None

    def float64(self, address):
        (value,) = struct.unpack(">d", self._bytes(address, 4))
        return value if math.isfinite(value) else None

    def string(self, address, words):
        raw = self._bytes(address, words)
        if raw == b"\xff" * len(raw):
            return None
        return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip() or None


def setpoint_words(amps):
    """Register 1210's FLOAT32 as two words."""
    return list(struct.unpack(">HH", struct.pack(">f", amps)))


def amps_text(value):
    return "%.1f A" % value


def watts_text(value):
    return "%.0f W" % value


def kwh_text(value):
    return "%.2f kWh" % value


def duration_text(value):
    seconds = int(value)
    return "%d:%02d:%02d" % (seconds // 3600, seconds % 3600 // 60, seconds % 60)


def table_text(table):
    return lambda value: table.get(value, str(value))


def declare_paths(add, accept, connection, process_name, max_current_a):
    """Every path, in order, through `add(path, value, writeable=, kind=, text=, on_change=)`;
    `text(value)` formats a valid value, `accept` is the on_change of every writeable path."""
    add("/Mgmt/ProcessName", process_name)
    add("/Mgmt/ProcessVersion", "1.0")
    add("/Mgmt/Connection", connection)
    add("/DeviceInstance", 41)
    add("/ProductId", 0xFFFF)
    add("/ProductName", "EV Charging Station")
    for path in ("/FirmwareVersion", "/HardwareVersion", "/Serial", "/Model"):
        add(path, None)
    add("/Connected", 0)
    add("/Role", "evcharger")
    add("/CustomName", "", writeable=True, kind=str, on_change=accept)
    add("/Mode", 0, writeable=True, kind=int, text=table_text(MODE_TEXT), on_change=accept)
    add("/StartStop", 1, writeable=True, kind=int, on_change=accept)
    add("/SetCurrent", max_current_a, writeable=True, kind=float, text=amps_text,
        on_change=accept)
    add("/MaxCurrent", max_current_a, writeable=True, kind=float, text=amps_text,
        on_change=accept)
    add("/MinCurrent", MIN_CURRENT_A, text=amps_text)
    add("/Current", None, text=amps_text)
    add("/Ac/Power", None, text=watts_text)
    for phase in (1, 2, 3):
        add("/Ac/L%d/Power" % phase, None, text=watts_text)
    add("/Ac/PhaseCount", None)
    add("/SetPhases", 3, writeable=True, kind=int, on_change=accept)
    add("/Ac/Energy/Forward", None, text=kwh_text)
    add("/Session/Energy", None, text=kwh_text)
    add("/Session/Time", None, text=duration_text)
    add("/ChargingTime", None, text=duration_text)
    add("/Session/Cost", None, text=lambda value: "%.2f" % value)
    add("/Status", 0, text=table_text(STATUS_TEXT))
    add("/Position", 1, writeable=True, kind=int, text=table_text(POSITION_TEXT),
        on_change=accept)
    add("/AutoStart", 1, writeable=True, kind=int, on_change=accept)
    add("/GxAutoMode/Enabled", 1)
    add("/GxAutoMode/Source", process_name)
    for path in PLANNER_PATHS:               # constant here: the minimal drivers plan nothing
        add(path, PLANNER_START.get(path))


def target(current, started, maximum):
    """The setpoint for register 1210: below 6 A, or stopped, 0."""
    amps = min(current, maximum) if started else 0.0
    return amps if amps >= MIN_CURRENT_A else 0.0


def accept_write(path, value, current, max_current_a):
    """(accepted, the new setpoint or None) for a write of `value` to `path`; `current(path)`
    is a path's value before the write."""
    if path in ("/SetCurrent", "/MaxCurrent"):
        if not 0.0 <= value <= max_current_a:
            return False, None
        if path == "/SetCurrent" and 0.0 < value < MIN_CURRENT_A:
            return False, None     # a car does not charge below 6 A; 0 pauses (as phaeton)
        if path == "/MaxCurrent" and value < MIN_CURRENT_A:
            return False, None
    elif path == "/CustomName":
        if len(value) > 64:
            return False, None
    elif path == "/SetPhases":
        if value != 3:
            return False, None     # no phase switching in the minimal drivers
    else:
        low, high = LIMITS[path]
        if not low <= value <= high:
            return False, None
    if path not in ("/SetCurrent", "/StartStop", "/MaxCurrent"):
        return True, None
    # the new value is stored after the write is accepted: the target with it
    amps = value if path == "/SetCurrent" else current("/SetCurrent")
    started = value if path == "/StartStop" else current("/StartStop")
    maximum = value if path == "/MaxCurrent" else current("/MaxCurrent")
    return True, target(amps, started, maximum)


def identity_values(identity):
    return {"/Serial": identity.string(157, 11), "/Model": identity.string(140, 17),
            "/HardwareVersion": identity.string(140, 17),
            "/FirmwareVersion": identity.string(123, 17)}


def lost_values():
    values = {"/Connected": 0, "/Status": 0}
    values.update((path, None) for path in MEASURED_PATHS)
    return values


def measured_values(status, meter, control, session, now):
    """(path values, session) from the three blocks; `session` is (monotonic s, lifetime kWh)
    at the car's arrival, None while no car is present."""
    mode3 = control.string(1201, 5) or ""
    currents = [meter.float32(a) for a in (320, 322, 324)]
    powers = [meter.float32(a) for a in (338, 340, 342)]
    total_w = meter.float32(344)
    energy_wh = meter.float64(374)
    lifetime_kwh = None if energy_wh is None else energy_wh / 1000.0
    if mode3[:1] in ("B", "C", "D"):
        if session is None:
            session = (now, lifetime_kwh)
        status_code = 2 if mode3 in ("C2", "D2") else 1
    else:
        session = None
        status_code = 0
    session_energy = session_time = None
    if session is not None:
        started, start_kwh = session
        session_time = int(now - started)
        if lifetime_kwh is not None and start_kwh is not None:
            session_energy = round(lifetime_kwh - start_kwh, 3)
    known = [a for a in currents if a is not None]
    values = {
        "/Connected": 1,
        "/Status": status_code,
        "/Current": round(max(known), 2) if known else None,
        "/Ac/Power": None if total_w is None else round(total_w, 1),
        "/Ac/PhaseCount": sum(1 for a in known if a >= 1.0) or None,
        "/Ac/Energy/Forward": None if lifetime_kwh is None else round(lifetime_kwh, 3),
        "/Session/Energy": session_energy,
        "/Session/Time": session_time,
        "/ChargingTime": session_time,
        "/Session/Cost": None if session_time is None else 0.0,
    }
    for phase, watts in enumerate(powers, start=1):
        values["/Ac/L%d/Power" % phase] = None if watts is None else round(watts, 1)
    return values, session
